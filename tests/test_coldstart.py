"""The item cold-start protocol: the split, its views, the normalised HR, the evaluation schedule, missing
modalities, MAMEX (routing, gate, masks, losses) and the one-line errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import defaults
from mmjax.data import InteractionDataset, load_mmrec_dir, make_synthetic
from mmjax.data.cold import cold_item_split
from mmjax.errors import ConfigError, DataError
from mmjax.eval import per_user_metrics
from mmjax.models import build_model
from mmjax.models.mamex import SparseExperts
from mmjax.train.coldstart import coldstart_task
from mmjax.train.loop import eval_spec
from mmjax.train.missing import missing_view_name
from mmjax.train.train import evaluate_best, prepare, train_and_evaluate

from mmjax.config_files import load_config_file

from helpers import small_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_mamex(users=200, items=120, epochs=3, **model):
    config = load_config_file(os.path.join(ROOT, "configs", "mamex.py"))
    config.data.synthetic.num_users = users
    config.data.synthetic.num_items = items
    config.train.num_epochs = epochs
    config.train.batch_size = 256
    config.model.embed_dim = 16
    config.eval.every = 1
    config.eval.ks = (5, 10, 20)
    for key, value in model.items():
        config.model[key] = value
    return config


def synthetic(users=200, items=120):
    return make_synthetic(num_users=users, num_items=items, latent_dim=8, mean_interactions=12.0, num_categories=4,
                          modalities=dict(image=(16, 0.5), audio=(8, 1.0)), popularity_skew=1.0, seed=0)


def all_pairs(dataset):
    return {tuple(p) for split in ("train", "valid", "test") for p in getattr(dataset, split)}


def test_cold_items_leave_train_and_split_by_item_into_valid_and_test():
    dataset = synthetic()
    split = cold_item_split(dataset, fraction=0.2, seed=3)
    data = split.dataset
    assert len(split.cold_items) == 24 and np.array_equal(split.cold_items, np.sort(split.cold_items))
    assert not split.is_cold[data.train[:, 1]].any()
    assert set(split.valid_cold_items).isdisjoint(split.test_cold_items)
    assert set(split.valid_cold_items) | set(split.test_cold_items) == set(split.cold_items)
    assert set(split.rows("valid", cold=True)[:, 1]) <= set(split.valid_cold_items)
    assert set(split.rows("test", cold=True)[:, 1]) <= set(split.test_cold_items)
    assert all_pairs(data) == all_pairs(dataset)  # nothing dropped, nothing added
    warm_test = {tuple(p) for p in dataset.test if not split.is_cold[p[1]]}
    assert {tuple(p) for p in split.rows("test", cold=False)} == warm_test  # warm rows keep their split
    again = cold_item_split(dataset, fraction=0.2, seed=3)
    assert np.array_equal(again.cold_items, split.cold_items) and data.checksum == again.dataset.checksum
    assert not np.array_equal(cold_item_split(dataset, 0.2, seed=4).cold_items, split.cold_items)


def test_a_dataset_cold_list_is_used_and_an_existing_cold_split_kept(tmp_path):
    dataset = synthetic()
    cold = np.arange(0, 120, 5)
    listed = cold_item_split(InteractionDataset(**{**vars_of(dataset), "cold_items": cold}), fraction=0.5, seed=0)
    assert np.array_equal(listed.cold_items, cold)
    # already split: cold items only in valid (even ones) and test (odd ones), none in train
    is_cold = np.isin(np.arange(120), cold)
    pairs = np.concatenate([dataset.train, dataset.valid, dataset.test])
    train = pairs[~is_cold[pairs[:, 1]]]
    cold_pairs = pairs[is_cold[pairs[:, 1]]]
    to_valid = cold_pairs[:, 1] % 2 == 0
    kept = InteractionDataset(name="kept", num_users=dataset.num_users, num_items=120, train=train,
                              valid=cold_pairs[to_valid], test=cold_pairs[~to_valid], features=dataset.features,
                              cold_items=cold)
    split = cold_item_split(kept)
    assert split.dataset is kept
    assert set(split.valid_cold_items) == set(cold_pairs[to_valid, 1])


def vars_of(dataset):
    return {field: getattr(dataset, field) for field in ("name", "num_users", "num_items", "train", "valid", "test",
                                                        "features")}


def test_views_rank_cold_items_only_and_report_warm_and_hybrid():
    config = small_mamex()
    task = coldstart_task(config, synthetic())
    assert list(task.eval_sets) == ["valid", "test", "test_warm", "test_hybrid"]
    cold = task.eval_sets["valid"].candidates
    assert np.array_equal(task.eval_sets["test"].candidates, cold)
    assert task.eval_sets["test_hybrid"].candidates is None
    assert set(task.eval_sets["test_warm"].candidates).isdisjoint(cold)
    for view in ("valid", "test"):
        truth = task.eval_sets[view].ground_truth
        assert np.isin(truth[truth >= 0], cold).all()


def test_normalised_hit_ratio_is_hits_over_min_k_and_ground_truth():
    hits = jnp.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], jnp.float32)
    positives = jnp.array([5, 1, 2])
    values = per_user_metrics(hits, positives, ks=(2, 4), metrics=("nhr", "hr"))
    np.testing.assert_allclose(values["nhr@2"], [1 / 2, 1 / 1, 2 / 2])
    np.testing.assert_allclose(values["nhr@4"], [2 / 4, 1 / 1, 4 / 2])
    np.testing.assert_allclose(values["hr@4"], [1, 1, 1])


def test_first_epoch_sets_when_evaluation_starts():
    config = defaults.coldstart_config()
    spec = eval_spec(config.eval)
    assert [e for e in range(35) if spec.due(e, 1000)] == [0, 10, 20, 30]
    config.eval.first_epoch = None
    assert [e for e in range(35) if eval_spec(config.eval).due(e, 1000)] == [9, 19, 29]
    config.eval.first_epoch = -1
    with pytest.raises(ConfigError, match="eval.first_epoch"):
        eval_spec(config.eval)


def test_mamex_routes_each_item_to_its_top_k_experts():
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 5))
    module = SparseExperts(num_experts=4, top_k=2, out_dim=3)
    params = module.init(jax.random.PRNGKey(1), x)
    mixed, dense, sparse = module.apply(params, x)
    p = params["params"]
    outputs = np.einsum("nd,edk->nek", x, p["expert_kernels"]) + np.asarray(p["expert_biases"])
    logits = np.asarray(x) @ np.asarray(p["router"]["kernel"]) + np.asarray(p["router"]["bias"])
    for row in range(7):
        top = np.argsort(-logits[row])[:2]
        weights = np.exp(logits[row, top]) / np.exp(logits[row, top]).sum()
        np.testing.assert_allclose(mixed[row], weights @ outputs[row, top], rtol=1e-5, atol=1e-6)
        assert set(np.flatnonzero(np.asarray(sparse[row]))) == set(top)
    np.testing.assert_allclose(dense.sum(-1), 1.0, rtol=1e-6)


def test_mamex_masked_missing_modality_leaves_the_gate_and_its_losses():
    dataset = synthetic()
    missing = np.zeros(120, bool)
    missing[:30] = True
    features = dict(dataset.features)
    features["image"] = np.where(missing[:, None], 0.0, features["image"]).astype(np.float32)
    holed = InteractionDataset(**{**vars_of(dataset), "features": features, "missing_features": {"image": missing}})
    config = small_mamex()
    model = build_model(config.model, holed)
    params = model.init(jax.random.PRNGKey(0))
    gate = model.inspect(params, model.consts)["gate/image"]
    np.testing.assert_allclose(gate[:30], 0.0, atol=1e-7)
    assert (gate[30:] > 0).all()
    loss, parts = model.loss(params, model.consts, {"users": jnp.array([0, 1]), "positives": jnp.array([0, 40]),
                                                   "negatives": jnp.array([5, 50]), "weights": jnp.ones(2)},
                             jax.random.PRNGKey(2))
    assert np.isfinite(float(loss)) and set(parts) == {"bpr", "reg", "align", "moe_balance", "fusion_balance"}
    config.model.missing = "zero_fill"
    filled = build_model(config.model, holed)
    assert (filled.inspect(params, filled.consts)["gate/image"][:30] > 0).all()


def test_mamex_learns_cold_items_from_content_and_evaluation_reproduces(tmp_path):
    config = small_mamex(users=300, items=300, epochs=30)
    config.eval.every = 10
    results = train_and_evaluate(config, str(tmp_path))
    # 60 cold items: a random ranking finds 10 / 60 of a user's cold items in its top 10
    assert results["test"]["recall@10"] > 2 * 10 / 60
    assert {"test", "test_warm", "test_hybrid"} <= set(results)
    again = evaluate_best(config, str(tmp_path))
    for metric, value in results["test"].items():
        assert again["test"][metric] == pytest.approx(value, abs=1e-6)


def test_missing_modality_view_in_eval_mode(tmp_path):
    config = small_mamex(epochs=2)
    train_and_evaluate(config, str(tmp_path))
    config.eval.drop_modality = "image"
    config.eval.drop_fraction = 1.0
    out = evaluate_best(config, str(tmp_path))
    name = missing_view_name("test", "image", 1.0)
    assert name == "test_no_image_100pct" and name in out
    assert out[name] != out["test"]
    config.eval.drop_fraction = 0.0
    out = evaluate_best(config, str(tmp_path))
    assert out[missing_view_name("test", "image", 0.0)] == pytest.approx(out["test"])


def test_missing_modality_works_for_a_graph_model(tmp_path):
    config = small_config("vbpr", num_epochs=1)
    config.model.reg_weight = 2.0
    train_and_evaluate(config, str(tmp_path))
    config.eval.drop_modality = "text"
    out = evaluate_best(config, str(tmp_path))
    assert out["test_no_text_100pct"] != out["test"]


@pytest.mark.parametrize("field, value, message", [
    ("data.cold.fraction", 1.0, "data.cold.fraction"),
    ("data.cold.fraction", 0.0, "data.cold.fraction"),
    ("eval.drop_modality", "video", "eval.drop_modality"),
    ("eval.drop_fraction", 1.5, "eval.drop_fraction"),
    ("model.top_k", 5, "model.top_k"),
    ("model.fusion", "sum", "model.fusion"),
])
def test_bad_cold_start_config_is_one_line(field, value, message):
    config = small_mamex()
    section, leaf = field.rsplit(".", 1)
    node = config
    for part in section.split("."):
        node = node[part]
    node[leaf] = value
    with pytest.raises(ConfigError, match=message):
        prepare(config)


def test_cold_start_model_needs_features():
    config = small_mamex()
    config.data.synthetic.modalities = {}
    with pytest.raises(DataError, match="modality"):
        prepare(config)


def test_cold_list_naming_an_unknown_item_is_a_data_error(tmp_path):
    rows = "userID\titemID\tx_label\n" + "".join(f"{u}\t{i}\t0\n" for u in range(4) for i in range(5))
    (tmp_path / "toy.inter").write_text(rows)
    np.save(tmp_path / "image_feat.npy", np.ones((5, 2), np.float32))
    np.save(tmp_path / "cold_items.npy", np.array([1, 9]))
    with pytest.raises(DataError, match="cold_items.npy entry 1: item 9 is not an item"):
        load_mmrec_dir(tmp_path)
    np.save(tmp_path / "cold_items.npy", np.array([1, 3]))
    assert list(load_mmrec_dir(tmp_path).cold_items) == [1, 3]


def test_robustness_table_and_cold_start_report(tmp_path):
    from experiments import robustness
    from mmjax.report import report

    workdirs = []
    for seed in (1, 2):
        config = small_mamex(epochs=2)
        config.train.seed = seed
        workdirs.append(str(tmp_path / f"run_seed{seed}"))
        train_and_evaluate(config, workdirs[-1])
    results = tmp_path / "results"
    assert robustness.main(["--run", f"MAMEX={workdirs[0]}", "--fractions", "0,1", "--name", "one",
                            "--results-root", str(results)]) == 0
    assert robustness.main(["--run", f"MAMEX={tmp_path}/run_seed*", "--fractions", "0,1", "--name", "two",
                            "--results-root", str(results)]) == 0
    with open(results / "one" / "robustness.json") as f:
        one = json.load(f)["runs"]["MAMEX"]
    with open(results / "two" / "robustness.json") as f:
        two = json.load(f)["runs"]["MAMEX"]
    assert set(one["missing"]) == {"image", "text"} and one["complete_std"] == 0.0
    assert one["missing"]["image"]["0"] == pytest.approx(one["complete"])
    assert [run["seed"] for run in two["runs"]] == [1, 2] and two["runs"][0]["missing"] == one["missing"]
    for modality in ("image", "text"):
        per_seed = [run["missing"][modality]["1"] for run in two["runs"]]
        assert two["missing"][modality]["1"] == pytest.approx(np.mean(per_seed))
        assert two["missing_std"][modality]["1"] == pytest.approx(np.std(per_seed, ddof=1))  # as the ablation tables
    assert "| MAMEX | 2 (1, 2) | image |" in (results / "two" / "table.md").read_text()
    assert (results / "two" / "chart.png").exists()
    assert robustness.main(["--run", f"MAMEX={tmp_path}/nosuch*", "--name", "none",
                            "--results-root", str(results)]) == 2
    summary = report(workdirs[0])
    assert set(summary["gate"]) == {"image", "text"} and set(summary["expert_usage"]) == {"image", "text"}
    assert len(summary["expert_usage"]["image"]["mean_weight"]) == 4
    assert os.path.exists(summary["expert_usage_plot"]) and os.path.exists(summary["gate_histogram"])


def test_cold_start_resumes_as_an_uninterrupted_run_and_recommends(tmp_path):
    from mmjax.train.train import recommend

    full = train_and_evaluate(small_mamex(epochs=3), str(tmp_path / "full"))
    train_and_evaluate(small_mamex(epochs=1), str(tmp_path / "cut"))
    resumed = train_and_evaluate(small_mamex(epochs=3), str(tmp_path / "cut"))
    for key in ("best_epoch", "epochs_run", "valid", "test", "test_warm", "test_hybrid"):
        assert resumed[key] == full[key], key
    path = recommend(small_mamex(epochs=3), str(tmp_path / "full"), users=[0, 1])
    with open(path) as f:
        assert len(f.read().splitlines()) == 1 + 2 * 20


def test_two_devices_train_mamex_like_one(tmp_path):
    import subprocess
    import sys

    losses = []
    for devices in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        proc = subprocess.run([sys.executable, "-m", "mmjax.main", "--config=configs/mamex.py",
                               f"--workdir={tmp_path / str(devices)}", "--config.train.num_epochs=2",
                               "--config.train.batch_size=500", "--config.model.embed_dim=16",
                               "--config.data.synthetic.num_users=200", "--config.data.synthetic.num_items=120",
                               "--config.eval.ks=(5,10,20)"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(tmp_path / str(devices) / "metrics.jsonl") as f:
            losses.append([json.loads(line)["loss"] for line in f])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
