"""RLMultimodalRec: gated fusion against numpy, every ablation flag, any number of modalities, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import make_synthetic
from mmjax.errors import ConfigError, DataError
from mmjax.graph import dense_adjacency, user_item_graph
from mmjax.models import build_model
from mmjax.nn.gates import ModalityFusion
from mmjax.train.train import train_and_evaluate

import helpers


def rlm_config(**model):
    config = helpers.small_config(users=120, items=80)
    config.model.name = "rlmultimodalrec"
    config.model.update(dict(n_layers=2, reg_weight=1e-4, fusion="gate", gate="vector", item_init="id+content",
                             content_dropout=0.0, proj_weight_decay=0.0, feature_norm="none",
                             content_scale_init=None))
    config.model.update(model)
    return config


def dataset(modalities=None):
    kwargs = {} if modalities is None else {"modalities": modalities}
    return make_synthetic(num_users=120, num_items=80, seed=5, **kwargs)


def test_two_modality_gate_is_a_sigmoid_gate():
    rng = np.random.default_rng(0)
    stacked = jnp.asarray(rng.normal(size=(2, 7, 4)), jnp.float32)
    fusion = ModalityFusion("gate", "vector")
    params = fusion.init(jax.random.PRNGKey(0), stacked)
    fused, weights = fusion.apply(params, stacked)
    kernel, bias = (np.asarray(params["params"]["gate"][k]) for k in ("kernel", "bias"))
    joined = np.concatenate([stacked[0], stacked[1]], axis=1)
    logits = (joined @ kernel + bias).reshape(7, 2, 4)
    g = 1 / (1 + np.exp(-(logits[:, 0] - logits[:, 1])))  # sigmoid of a linear map of [p1 ‖ p2]
    np.testing.assert_allclose(fused, g * stacked[0] + (1 - g) * stacked[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights[:, 0], g, rtol=1e-5)


@pytest.mark.parametrize("fusion,gate", [("gate", "scalar"), ("mean", "vector"), ("sum", "vector"),
                                         ("concat", "vector")])
def test_other_fusions(fusion, gate):
    stacked = jnp.asarray(np.random.default_rng(1).normal(size=(3, 5, 4)), jnp.float32)
    module = ModalityFusion(fusion, gate)
    fused, weights = module.apply(module.init(jax.random.PRNGKey(0), stacked), stacked)
    assert fused.shape == (5, 4)
    if fusion == "mean":
        np.testing.assert_allclose(fused, np.mean(stacked, axis=0), rtol=1e-6)
    if fusion == "sum":
        np.testing.assert_allclose(fused, np.sum(stacked, axis=0), rtol=1e-5)
    if fusion == "gate":
        assert weights.shape == (5, 3, 1)
        np.testing.assert_allclose(np.sum(weights, axis=1), 1.0, rtol=1e-6)


def test_forward_is_lightgcn_over_id_plus_fused_content():
    data = dataset()
    model = build_model(rlm_config().model, data)
    params = model.init(jax.random.PRNGKey(0))
    users, items = model.score_state(params, model.consts)
    p = params["params"]
    projections = [data.features[m] @ np.asarray(p[f"project_{m}"]["kernel"]) + np.asarray(p[f"project_{m}"]["bias"])
                   for m in sorted(data.features)]
    gates = np.asarray(model.inspect(params, model.consts)["gate/image"])  # mean over dims of the vector gate
    assert gates.shape == (80,) and np.all((gates > 0) & (gates < 1))
    joined = np.concatenate(projections, axis=1)
    logits = (joined @ np.asarray(p["fusion"]["gate"]["kernel"]) + np.asarray(p["fusion"]["gate"]["bias"]))
    logits = logits.reshape(80, 2, -1)
    w = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    content = w[:, 0] * projections[0] + w[:, 1] * projections[1]
    x0 = np.concatenate([p["user_embedding"], np.asarray(p["item_embedding"]) + content])
    a = dense_adjacency(user_item_graph(data.train, 120, 80))
    expected = (x0 + a @ x0 + a @ a @ x0) / 3
    np.testing.assert_allclose(np.concatenate([users, items]), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("overrides", [{"item_init": "content_only"}, {"item_init": "concat_proj"},
                                       {"n_layers": 0}, {"content_dropout": 0.1, "proj_weight_decay": 1e-3},
                                       {"modalities": ("text",)}, {"feature_norm": "l2"},
                                       {"feature_norm": "standard"}, {"content_scale_init": 0.0}])
def test_variants_give_finite_loss_and_gradients(overrides):
    model = build_model(rlm_config(**overrides).model, dataset())
    params = model.init(jax.random.PRNGKey(0))
    batch = {"users": jnp.array([0, 1, 2]), "positives": jnp.array([3, 4, 5]), "negatives": jnp.array([6, 7, 8]),
             "weights": jnp.array([1.0, 1.0, 0.0])}
    (loss, parts), grads = jax.value_and_grad(model.loss, has_aux=True)(params, model.consts, batch,
                                                                        jax.random.PRNGKey(1))
    assert np.isfinite(float(loss)) and float(parts["reg"]) > 0
    if "content_scale_init" in overrides:  # starts as LightGCN: only the scale itself moves at first
        assert float(jnp.abs(grads["params"]["content_scale"])) > 0
        return
    for name in sorted(dataset().features) if "modalities" not in overrides else overrides["modalities"]:
        assert float(jnp.abs(grads["params"][f"project_{name}"]["kernel"]).sum()) > 0


def test_three_modalities_and_missing_ones():
    three = dataset({"image": (16, 0.5), "text": (8, 1.0), "audio": (12, 0.8)})
    model = build_model(rlm_config().model, three)
    params = model.init(jax.random.PRNGKey(0))
    assert set(model.inspect(params, model.consts)) == {"gate/audio", "gate/image", "gate/text"}
    with pytest.raises(ConfigError, match="model.modalities"):
        build_model(rlm_config(modalities=("video",)).model, three)
    with pytest.raises(DataError, match="needs at least 1 modality"):
        build_model(rlm_config().model, dataset({}))


@pytest.mark.parametrize("field,value", [("fusion", "max"), ("gate", "matrix"), ("item_init", "x"),
                                         ("n_layers", -1), ("content_dropout", 1.0), ("feature_norm", "max")])
def test_bad_config_values(field, value):
    with pytest.raises(ConfigError, match=f"model.{field}"):
        build_model(rlm_config(**{field: value}).model, dataset())


def test_modalities_beat_ids_on_planted_data(tmp_path):
    # The synthetic items' features are noisy views of their latent factors: reading them must help.
    config = rlm_config()
    config.train.update(num_epochs=6, learning_rate=0.01)
    with_content = train_and_evaluate(config, str(tmp_path / "rlm"))
    config.model.name = "lightgcn"
    ids_only = train_and_evaluate(config, str(tmp_path / "lightgcn"))
    assert with_content["test"]["recall@20"] > ids_only["test"]["recall@20"] + 0.05
