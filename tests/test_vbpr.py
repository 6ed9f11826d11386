"""VBPR: item vectors against a numpy reference, MMRec's initialisation and loss, modalities, errors, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import InteractionDataset, make_synthetic
from mmjax.errors import ConfigError, DataError
from mmjax.models import build_model
from mmjax.models.vbpr import build
from mmjax.train.train import train_and_evaluate

from helpers import small_config

PAIRS = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2], [2, 3]], dtype=np.int32)
NO_PAIRS = np.zeros((0, 2), dtype=np.int32)


def toy_dataset(dims=(("text", 3), ("image", 5)), num_items=4, seed=0):
    rng = np.random.default_rng(seed)
    features = {name: rng.normal(size=(num_items, dim)).astype(np.float32) for name, dim in dims}
    return InteractionDataset(name="toy", num_users=3, num_items=num_items, train=PAIRS, valid=NO_PAIRS,
                              test=NO_PAIRS, features=features)


def vbpr_config(**model):
    config = small_config("vbpr").model
    config.embed_dim = 4
    config.reg_weight = 2.0
    for key, value in model.items():
        config[key] = value
    return config


def test_item_vectors_are_id_then_projection_of_sorted_modalities():
    dataset = toy_dataset()
    model = build(vbpr_config(), dataset)
    params = model.init(jax.random.PRNGKey(0))
    users, items = model.score_state(params, model.consts)
    p = params["params"]
    assert p["user_embedding"].shape == (3, 8) and p["item_embedding"].shape == (4, 4)
    assert p["item_linear"]["kernel"].shape == (3 + 5, 4)
    raw = np.concatenate([dataset.features["image"], dataset.features["text"]], axis=1)  # sorted names
    content = raw @ np.asarray(p["item_linear"]["kernel"]) + np.asarray(p["item_linear"]["bias"])
    np.testing.assert_allclose(items, np.concatenate([p["item_embedding"], content], axis=1), atol=1e-5)
    np.testing.assert_array_equal(users, p["user_embedding"])
    scores = model.score_fn((users, items), jnp.array([2, 0]))
    np.testing.assert_allclose(scores, np.asarray(users)[[2, 0]] @ np.asarray(items).T, rtol=1e-5, atol=1e-6)


def test_modality_order_in_config_does_not_change_the_content():
    dataset = toy_dataset()
    a = build(vbpr_config(modalities=("text", "image")), dataset).consts
    b = build(vbpr_config(modalities=("image", "text")), dataset).consts
    np.testing.assert_array_equal(a, b)


def test_feature_norm_is_applied_per_modality_before_concatenation():
    dataset = toy_dataset()
    raw = build(vbpr_config(), dataset).consts
    l2 = np.asarray(build(vbpr_config(feature_norm="l2"), dataset).consts)
    np.testing.assert_allclose(raw[:, :5], dataset.features["image"])
    np.testing.assert_allclose(np.linalg.norm(l2[:, :5], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(l2[:, 5:], axis=1), 1.0, rtol=1e-5)


def test_initialisation_follows_mmrec():
    dataset = toy_dataset(dims=(("image", 3000),), num_items=2000)
    params = build(vbpr_config(embed_dim=64), dataset).init(jax.random.PRNGKey(0))["params"]
    # Xavier-uniform ID tables (bound sqrt(6 / (rows + cols))).
    for name, shape in (("user_embedding", (3, 128)), ("item_embedding", (2000, 64))):
        bound = np.sqrt(6.0 / sum(shape))
        assert params[name].shape == shape and float(jnp.max(jnp.abs(params[name]))) <= bound
    # torch's xavier_normal_ on the projection (untruncated, std sqrt(2 / (in + out))), zero bias.
    kernel = np.asarray(params["item_linear"]["kernel"])
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / (3000 + 64)), rtol=0.02)
    assert np.abs(kernel).max() > 2.5 * np.sqrt(2.0 / (3000 + 64))  # not truncated at 2 std
    np.testing.assert_array_equal(params["item_linear"]["bias"], 0.0)


def test_loss_is_mmrec_bpr_plus_emb_loss_of_final_vectors_and_trains_every_parameter():
    dataset = toy_dataset()
    model = build(vbpr_config(reg_weight=0.5), dataset)
    params = model.init(jax.random.PRNGKey(3))
    params["params"]["item_linear"]["bias"] = jnp.full((4,), 0.1)  # off its zero init
    batch = {"users": jnp.array([0, 1, 2, 2]), "positives": jnp.array([1, 2, 3, 0]),
             "negatives": jnp.array([3, 0, 1, 0]), "weights": jnp.array([1.0, 1.0, 1.0, 0.0])}
    loss, parts = model.loss(params, model.consts, batch, jax.random.PRNGKey(0), None)
    users, items = (np.asarray(x, np.float64) for x in model.score_state(params, model.consts))
    u, pos, neg = users[[0, 1, 2]], items[[1, 2, 3]], items[[3, 0, 1]]
    diff = np.sum(u * pos, 1) - np.sum(u * neg, 1)
    mmrec_bpr = -np.mean(np.log(1e-10 + 1 / (1 + np.exp(-diff))))
    emb = (np.linalg.norm(u) + np.linalg.norm(pos) + np.linalg.norm(neg)) / 3
    np.testing.assert_allclose(parts["bpr"], mmrec_bpr, rtol=1e-5)
    np.testing.assert_allclose(parts["reg"], emb, rtol=1e-5)
    np.testing.assert_allclose(loss, mmrec_bpr + 0.5 * emb, rtol=1e-5)
    grads = jax.grad(lambda p: model.loss(p, model.consts, batch, None, None)[0])(params)["params"]
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        assert np.isfinite(grad).all() and float(jnp.max(jnp.abs(grad))) > 0, path


@pytest.mark.parametrize("modalities", [{"image": (16, 0.5)}, {"audio": (8, 0.5), "image": (16, 0.5),
                                                                "text": (4, 1.0)}])
def test_any_number_of_modalities(modalities):
    dataset = make_synthetic(num_users=50, num_items=40, mean_interactions=6.0, modalities=modalities)
    model = build(vbpr_config(), dataset)
    params = model.init(jax.random.PRNGKey(0))
    width = sum(dim for dim, _ in modalities.values())
    assert params["params"]["item_linear"]["kernel"].shape == (width, 4)
    users, items = model.score_state(params, model.consts)
    assert users.shape == (50, 8) and items.shape == (40, 8)
    one = build(vbpr_config(modalities=("image",)), dataset)
    assert one.init(jax.random.PRNGKey(0))["params"]["item_linear"]["kernel"].shape == (16, 4)


def test_bad_input_is_a_one_line_error():
    no_features = InteractionDataset(name="ids_only", num_users=3, num_items=4, train=PAIRS, valid=NO_PAIRS,
                                     test=NO_PAIRS, features={})
    with pytest.raises(DataError, match="at least 1 modality"):
        build_model(vbpr_config(), no_features)
    with pytest.raises(ConfigError, match="model.modalities"):
        build_model(vbpr_config(modalities=("video",)), toy_dataset())
    with pytest.raises(ConfigError, match="model.feature_norm"):
        build_model(vbpr_config(feature_norm="max"), toy_dataset())
    with pytest.raises(ConfigError, match="model.init"):
        build_model(vbpr_config(init="zeros"), toy_dataset())
    with pytest.raises(ConfigError, match="model.reg_weight"):
        build_model(vbpr_config(reg_weight=-1.0), toy_dataset())
    with pytest.raises(ConfigError, match="model.embed_dim"):
        build_model(vbpr_config(embed_dim=0), toy_dataset())


def test_training_learns(tmp_path):
    config = small_config("vbpr", learning_rate=0.01, num_epochs=4)
    config.model.reg_weight = 2.0  # configs/vbpr.py's default
    results = train_and_evaluate(config, str(tmp_path))
    # Random ranking of 150 items gives recall@20 ~ 0.13 on average; 4 epochs reach ~0.75 here.
    assert results["valid"]["recall@20"] > 0.4
    assert results["test"]["recall@20"] > 0.4
