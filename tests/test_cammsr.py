"""CAMMSR: both CAMoE forms and every ablation switch build, train a step and score; streams the data lacks
are dropped with a log line; the category-guided weights are reported."""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config_files import load_config_file, with_overrides
from mmjax.data import make_synthetic
from mmjax.data.sequences import history_windows, query_positions
from mmjax.errors import ConfigError
from mmjax.models import build_model
from mmjax.models.cammsr import noisy_categories, subset_experts
from mmjax.train.train import prepare, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"data.synthetic.num_users": 120, "data.synthetic.num_items": 60, "data.synthetic.mean_interactions": 8.0,
         "train.batch_size": 64, "train.num_epochs": 2, "eval.batch_size": 64, "model.max_len": 8,
         "model.embed_dim": 8, "model.inner_size": 16, "model.expert_hidden": 8, "model.num_layers": 1}


def config(**overrides):
    return with_overrides(load_config_file(os.path.join(ROOT, "configs", "cammsr.py")), {**SMALL, **overrides})


# every switch of configs/cammsr.py in three builds (each compiles a training step)
VARIANTS = [{},
            {"model.camoe": "subsets", "model.score_mode": "mean", "model.norm": "layernorm", "model.experts": "uni",
             "model.expert_attention": False, "model.category_guidance": False, "model.use_id": False},
            {"model.use_moe": False, "model.gate": "linear", "model.category_guidance": False, "model.cat_weight": 0.0,
             "model.swap_weight": 0.0, "model.category_noise": 0.2, "model.modalities": ()}]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: ",".join(f"{k[6:]}={v}" for k, v in o.items()) or "default")
def test_every_variant_trains_a_step_and_scores_finitely(overrides):
    _, task = prepare(config(**overrides))
    params = task.init_params(jax.random.PRNGKey(0))
    batch = {k: jnp.asarray(v[0]) for k, v in task.epoch_batches(0).items()}
    (loss, parts), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(params, task.consts, batch,
                                                                          jax.random.PRNGKey(1), None)
    assert np.isfinite(float(loss)) and all(np.isfinite(float(v)) for v in parts.values())
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))
    view = task.eval_sets["valid"]
    state = task.score_state(params, task.consts, None)
    query = {"users": jnp.asarray(view.users[:64]), "history": jnp.asarray(view.inputs["history"][:64])}
    windows_scores = task.score_fn(state, query)
    packed = {**query, "last": jnp.asarray(view.inputs["last"][:64]),
              **{k: jnp.asarray(a[0]) for k, a in view.block_inputs.items()}}
    assert windows_scores.shape == (64, 60) and np.isfinite(np.asarray(windows_scores)).all()
    # the packed eval rows score as one window per query does
    np.testing.assert_allclose(task.score_fn(state, packed), windows_scores, rtol=2e-4, atol=2e-5)


def test_text_only_data_drops_the_image_stream_and_says_so(caplog):
    dataset = make_synthetic(num_users=80, num_items=40, mean_interactions=8.0, sequential=True,
                             modalities={"text": (16, 0.5)})
    with caplog.at_level(logging.INFO):
        build_model(config().model, dataset)
    text = caplog.text
    assert "['image'] not in dataset" in text and "MSCL swaps id and text" in text


def test_training_runs_and_reports_the_category_weights(tmp_path):
    results = train_and_evaluate(config(), str(tmp_path / "run"))
    assert results["model"] == "cammsr" and np.isfinite(results["test"]["ndcg@10"])
    from mmjax.report import main as report_main
    report_main(["report", str(tmp_path / "run")])
    assert (tmp_path / "run" / "category_weights.png").is_file() and (tmp_path / "run" / "expert_usage.png").is_file()


def test_helpers():
    assert subset_experts(("id", "text", "image"), "all") == ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert subset_experts(("id", "text"), "uni") == ((0,), (1,))
    labels = np.arange(100) % 7
    noisy = noisy_categories(labels, 0.2, 0)
    assert 0 < np.mean(noisy != labels) <= 0.2 and noisy_categories(labels, 0.0, 0) is labels
    with pytest.raises(ConfigError, match="model.camoe"):
        prepare(config(**{"model.camoe": "other"}))
