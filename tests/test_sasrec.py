"""SASRec and the sequential protocol: packed rows equal one window per history, attention is causal, the
trainer's modes and data parallelism work for a sequence model, bad input is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import defaults
from mmjax.data import make_synthetic
from mmjax.data.sequences import history_windows, pack_windows, training_instances
from mmjax.models import build_model
from mmjax.models.sasrec import SASRec, last_states
from mmjax.nn.transformer import window_rows
from mmjax.train.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"data.synthetic.num_users": 200, "data.synthetic.num_items": 80, "data.synthetic.mean_interactions": 8.0,
         "train.batch_size": 128, "train.num_epochs": 3, "eval.batch_size": 64, "model.max_len": 10,
         "model.embed_dim": 16, "model.inner_size": 32, "train.learning_rate": 0.005}


def small_sequential(model: str = "sasrec", **overrides) -> "ml_collections.ConfigDict":
    from mmjax.config_files import load_config_file, with_overrides
    config = load_config_file(os.path.join(ROOT, "configs", f"{model}.py"))
    return with_overrides(config, {**SMALL, **overrides})


def module(max_len: int = 6) -> SASRec:
    return SASRec(num_items=9, hidden=8, max_len=max_len, num_layers=2, num_heads=2, inner=16, hidden_dropout=0.5,
                  attention_dropout=0.5, eps=1e-12)


def test_packed_rows_give_what_one_window_per_history_gives():
    windows = np.array([[0, 0, 0, 3, 4, 5], [0, 0, 0, 0, 0, 7], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 9, 8]], np.int32)
    net = module()
    table = jax.random.normal(jax.random.PRNGKey(1), (9, 8))
    params = net.init(jax.random.PRNGKey(0), jnp.asarray(windows), *window_rows(jnp.asarray(windows)), table, True)
    one_each = net.apply(params, jnp.asarray(windows), *window_rows(jnp.asarray(windows)), table, True)[:, -1]
    packed = pack_windows(windows)
    assert len(packed.tokens) == 3  # [3 4 5 7 . .], [1 .. 6], [9 8 . . . .]
    hidden = net.apply(params, jnp.asarray(packed.tokens), jnp.asarray(packed.segments),
                       jnp.asarray(packed.positions), table, True)
    np.testing.assert_allclose(last_states(hidden, jnp.asarray(packed.last)), one_each, rtol=1e-5, atol=1e-6)


def test_attention_is_causal():
    history = jnp.array([[0, 2, 3, 4, 5, 6]], jnp.int32)
    net = module()
    table = jax.random.normal(jax.random.PRNGKey(1), (9, 8))
    params = net.init(jax.random.PRNGKey(0), history, *window_rows(history), table, True)
    base = net.apply(params, history, *window_rows(history), table, True)
    changed = history.at[0, 4].set(9)
    after = net.apply(params, changed, *window_rows(changed), table, True)
    # the real positions before the change see nothing of it (position 0 is padding and attends anywhere)
    np.testing.assert_allclose(after[0, 1:4], base[0, 1:4], rtol=1e-6)
    assert not np.allclose(after[0, 4:], base[0, 4:])


def test_sasrec_learns_the_planted_order_and_the_modes_work(tmp_path):
    config = small_sequential(**{"train.num_epochs": 6})
    results = train_and_evaluate(config, str(tmp_path / "run"))
    assert results["selected_on"] == "valid" and results["monitor"] == "ndcg@10"
    assert set(results["test"]) >= {"hr@10", "ndcg@10", "mrr@10", "recall@10"}
    # the planted successors: well above popularity, whose test HR@10 on this data is about .13
    assert results["test"]["hr@10"] > 0.3
    from mmjax.train.train import evaluate_best, recommend
    again = evaluate_best(config, str(tmp_path / "run"))
    for view in ("valid", "test"):
        for name, value in results[view].items():
            assert again[view][name] == pytest.approx(value, rel=1e-5), (view, name)
    path = recommend(config, str(tmp_path / "run"), users=[0, 5])
    with open(path) as f:
        rows = f.read().splitlines()
    assert rows[0] == "user_id,rank,item_id,score" and len(rows) == 1 + 2 * config.recommend.k


def test_resume_after_a_kill_ends_as_an_uninterrupted_run(tmp_path):
    full = train_and_evaluate(small_sequential(**{"train.num_epochs": 3}), str(tmp_path / "full"))
    train_and_evaluate(small_sequential(**{"train.num_epochs": 1}), str(tmp_path / "cut"))
    resumed = train_and_evaluate(small_sequential(**{"train.num_epochs": 3}), str(tmp_path / "cut"))
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert resumed[key] == full[key], key


def test_eval_every_evaluates_every_nth_epoch(tmp_path):
    results = train_and_evaluate(small_sequential(**{"train.num_epochs": 3, "eval.every": 2}), str(tmp_path))
    with open(tmp_path / "metrics.jsonl") as f:
        evaluated = [json.loads(line)["epoch"] for line in f if "valid" in json.loads(line)]
    assert evaluated == [1, 2] and results["best_epoch"] in evaluated


def run_cli(workdir, *args, devices: int = 1) -> subprocess.CompletedProcess:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    flags = [f"--config.{k}={v}" for k, v in SMALL.items()]
    return subprocess.run([sys.executable, "-m", "mmjax.main", "--config=configs/sasrec.py", f"--workdir={workdir}",
                           *flags, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_two_devices_train_a_sequence_model_like_one(tmp_path):
    no_dropout = ("--config.model.hidden_dropout=0.0", "--config.model.attention_dropout=0.0",
                  "--config.train.batch_size=100", "--config.train.num_epochs=2")
    losses = []
    for devices in (1, 2):
        proc = run_cli(tmp_path / str(devices), *no_dropout, devices=devices)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(tmp_path / str(devices) / "metrics.jsonl") as f:
            losses.append([json.loads(line)["loss"] for line in f])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


@pytest.mark.parametrize("overrides,message", [
    ({"model.max_len": 1}, "model.max_len: expected >= 2"),
    ({"model.num_heads": 3}, "model.num_heads"),
    ({"eval.monitor": "auc@10"}, "eval.monitor"),
    ({"eval.every": 0}, "eval.every"),
])
def test_bad_sequential_config_is_a_config_error(tmp_path, overrides, message):
    from mmjax.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(small_sequential(**overrides), str(tmp_path))


def test_a_sequential_model_on_data_without_order_is_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "toy.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n0\t2\t0\n0\t3\t1\n0\t4\t2\n")
    proc = run_cli(tmp_path / "run", f"--config.data.dir={data}")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "needs an order column" in errors[0], proc.stderr[-2000:]


@pytest.mark.parametrize("category,message", [
    (np.array([0, 1, 2], np.int64), "beyond the 3 rows of item_category.npy"),
    (np.array([0, -1, 2, 1, 0, 1], np.int64), "item_category.npy row 1: category -1"),
])
def test_bad_category_files_are_data_errors(tmp_path, category, message):
    from mmjax.data import load_mmrec_dir
    from mmjax.errors import DataError
    rows = "".join(f"{u}\t{i}\t{p}\t{x}\n" for u in range(2) for p, (i, x) in enumerate([(1, 0), (2, 0), (3, 0),
                                                                                        (4, 1), (5, 2)]))
    (tmp_path / "toy.inter").write_text("userID\titemID\tseq_pos\tx_label\n" + rows)
    np.save(tmp_path / "item_category.npy", category)
    with pytest.raises(DataError, match=message):
        load_mmrec_dir(tmp_path)


def test_softmax_pad_adds_one_trainable_training_class_and_nothing_else():
    dataset = make_synthetic(num_users=60, num_items=30, mean_interactions=6.0, sequential=True, modalities={})
    cfg = small_sequential().model
    plain = build_model(cfg, dataset)
    cfg.softmax_pad = True
    padded = build_model(cfg, dataset)
    params_pad = padded.init(jax.random.PRNGKey(0))
    assert params_pad["params"]["pad_class"].shape == (1, int(cfg.embed_dim))
    params = {"params": {k: v for k, v in params_pad["params"].items() if k != "pad_class"}}
    assert "pad_class" not in plain.init(jax.random.PRNGKey(0))["params"]
    windows = jnp.asarray(np.array([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10], [0] * 7 + [2, 1, 4]], np.int32))
    packed = pack_windows(np.asarray(windows))
    batch = {"tokens": packed.tokens, "segments": packed.segments, "positions": packed.positions,
             "last": packed.last, "target": jnp.array([3, 7], jnp.int32), "weights": jnp.ones(2)}
    rng = jax.random.PRNGKey(1)
    ce_plain, _ = plain.loss(params, plain.consts, batch, rng)
    ce_pad, _ = padded.loss(params_pad, padded.consts, batch, rng)
    assert float(ce_pad) > float(ce_plain)  # one more class in the denominator, the same logits otherwise
    query = {"users": jnp.arange(2), "history": windows}
    scores_plain = plain.score_fn(plain.score_state(params, plain.consts), query)
    scores_pad = padded.score_fn(padded.score_state(params_pad, padded.consts), query)
    assert scores_pad.shape == (2, dataset.num_items)  # the padding class is never scored
    np.testing.assert_allclose(scores_pad, scores_plain, rtol=1e-6)
