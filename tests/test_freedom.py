"""FREEDOM and its degree-sensitive edge dropout: dense references, sampling, loss, modalities, training."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import make_synthetic
from mmjax.errors import ConfigError
from mmjax.graph import dense_adjacency, knn_item_graph, propagate, propagate_sparse, user_item_graph
from mmjax.graph.dropout import (bipartite_edges, degree_sensitive_dropout, kept_edge_count,
                                 normalized_bipartite, sample_without_replacement)
from mmjax.models import build_model
from mmjax.models.inputs import modality_weights
from mmjax.train.train import train_and_evaluate

from helpers import small_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAIRS = np.array([[0, 0], [0, 1], [0, 3], [1, 1], [1, 2], [2, 0], [2, 2], [2, 3], [3, 3]], dtype=np.int32)
NUM_USERS, NUM_ITEMS = 4, 5  # item 4 has no edge


def dense_normalized(pairs: np.ndarray, num_users: int, num_items: int) -> np.ndarray:
    """Numpy reference: D^-1/2 A D^-1/2 of the bipartite graph of `pairs`, MMRec's +1e-7 in the degrees."""
    n = num_users + num_items
    a = np.zeros((n, n))
    a[pairs[:, 0], num_users + pairs[:, 1]] = 1.0
    a[num_users + pairs[:, 1], pairs[:, 0]] = 1.0
    d = (a.sum(1) + 1e-7) ** -0.5
    return d[:, None] * a * d[None, :]


def as_dense(graph, num_nodes: int) -> np.ndarray:
    """Any graph representation as a dense matrix, read through propagation of the identity."""
    return np.asarray(propagate(graph, jnp.eye(num_nodes, dtype=jnp.float32)))


def kept_pairs(graph, num_users: int) -> np.ndarray:
    """The (user, item) pairs of a dropped GraphsTuple (its user -> item half)."""
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    forward = senders < num_users
    return np.stack([senders[forward], receivers[forward] - num_users], axis=1)


def freedom_defaults():
    """configs/freedom.py's get_config()."""
    spec = importlib.util.spec_from_file_location("freedom_config", os.path.join(ROOT, "configs", "freedom.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def freedom_config_small(**model):
    """The small synthetic config with configs/freedom.py's model fields, then `model` overrides."""
    config = small_config("freedom", learning_rate=0.01)
    base = freedom_defaults().model
    for key in ("dropout", "knn_k", "knn_weighted", "mm_image_weight", "n_mm_layers", "n_ui_layers",
                "train_features", "lambda_coeff", "reg_weight"):
        config.model[key] = base[key]
    for key, value in model.items():
        config.model[key] = value
    return config


# --- dropout ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_keep", [3, len(PAIRS)])
def test_dropped_graph_equals_dense_construction_of_its_kept_edges(num_keep):
    edges = bipartite_edges(PAIRS, NUM_USERS, NUM_ITEMS)
    rng = jax.random.PRNGKey(num_keep)
    drop = jax.jit(degree_sensitive_dropout, static_argnums=(2, 3))
    tuple_graph, sparse_graph = drop(edges, rng, num_keep, "segment_sum"), drop(edges, rng, num_keep, "sparse")
    kept = kept_pairs(tuple_graph, NUM_USERS)
    assert len(kept) == num_keep and len(np.unique(kept, axis=0)) == num_keep
    assert {tuple(p) for p in kept} <= {tuple(p) for p in PAIRS}
    assert tuple_graph.senders.shape == (2 * num_keep,)
    assert sparse_graph.transpose is None and sparse_graph.matrix.data.shape == (2 * num_keep,)
    expected = dense_normalized(kept, NUM_USERS, NUM_ITEMS)
    n = NUM_USERS + NUM_ITEMS
    np.testing.assert_allclose(as_dense(tuple_graph, n), expected, atol=1e-6)
    np.testing.assert_allclose(as_dense(sparse_graph, n), expected, atol=1e-6)
    np.testing.assert_allclose(sparse_graph.matrix.todense(), expected, atol=1e-6)
    if num_keep == len(PAIRS):  # keeping every edge gives the full normalised graph
        np.testing.assert_allclose(expected, dense_adjacency(user_item_graph(PAIRS, NUM_USERS, NUM_ITEMS)),
                                   atol=1e-6)
    # the two blocks of the same dropped graph: the square CSR's rows, so the products agree bit for bit
    blocks = drop(edges, rng, num_keep, "blocks")
    x = jnp.asarray(np.random.default_rng(num_keep).normal(size=(n, 4)), jnp.float32)
    square = propagate_sparse(sparse_graph, x)
    np.testing.assert_array_equal(propagate_sparse(blocks.user_items, x[NUM_USERS:]), square[:NUM_USERS])
    np.testing.assert_array_equal(propagate_sparse(blocks.item_users, x[:NUM_USERS]), square[NUM_USERS:])


def test_sampling_weights_are_mmrec_degree_weights():
    edges = bipartite_edges(PAIRS, NUM_USERS, NUM_ITEMS)
    user_degree = np.bincount(PAIRS[:, 0], minlength=NUM_USERS)
    item_degree = np.bincount(PAIRS[:, 1], minlength=NUM_ITEMS)
    np.testing.assert_allclose(edges.weights, 1 / np.sqrt(user_degree[PAIRS[:, 0]] * item_degree[PAIRS[:, 1]]),
                               rtol=1e-6)


def test_heavier_edges_are_kept_more_often():
    # Successive draws without replacement: P(first draw = e) = w_e / sum w; with one draw that is the rate.
    weights = jnp.array([1.0, 2.0, 4.0, 8.0])
    draws = jax.vmap(lambda key: sample_without_replacement(key, weights, 1)[0])(
        jax.random.split(jax.random.PRNGKey(0), 20000))
    rates = np.bincount(np.asarray(draws), minlength=4) / 20000
    np.testing.assert_allclose(rates, np.asarray(weights) / 15.0, atol=0.015)
    # Keeping 2 of 4: inclusion probabilities are ordered by weight and every pair is distinct.
    pairs = np.asarray(jax.vmap(lambda key: sample_without_replacement(key, weights, 2))(
        jax.random.split(jax.random.PRNGKey(1), 20000)))
    assert np.all(pairs[:, 0] != pairs[:, 1])
    inclusion = np.bincount(pairs.reshape(-1), minlength=4) / 20000
    assert np.all(np.diff(inclusion) > 0.05)
    # Exact inclusion probability of the lightest edge under successive weighted draws.
    w = np.asarray(weights)
    p0 = w[0] / w.sum() + sum(w[j] / w.sum() * w[0] / (w.sum() - w[j]) for j in range(1, 4))
    assert abs(inclusion[0] - p0) < 0.015


def test_kept_edge_count_is_mmrecs_and_checks_the_rate():
    assert kept_edge_count(59541, 0.8) == int(59541 * (1 - 0.8))
    assert kept_edge_count(10, 0.0) == 10
    for bad in (1.0, -0.1, 0.95):
        with pytest.raises(ConfigError, match="model.dropout"):
            kept_edge_count(10, bad)


def test_normalized_bipartite_rejects_unknown_kind():
    with pytest.raises(ConfigError, match="model.propagation"):
        normalized_bipartite(jnp.array([0]), jnp.array([0]), 1, 1, "dense")


# --- model -------------------------------------------------------------------------------------------------

def test_modality_weights():
    assert modality_weights(("image", "text"), 0.1) == {"image": 0.1, "text": 0.9}
    assert modality_weights(("audio", "image"), 0.1) == {"audio": 0.9, "image": 0.1}
    assert modality_weights(("text",), 0.1) == {"text": 1.0}
    mixed = modality_weights(("image", "text", "audio"), 0.4)
    assert mixed["image"] == 0.4 and mixed["text"] == pytest.approx(0.3) and mixed["audio"] == pytest.approx(0.3)


def small_dataset(modalities=None):
    return make_synthetic(num_users=40, num_items=30, latent_dim=4, mean_interactions=6.0, num_categories=3,
                          modalities=modalities or dict(image=(8, 0.5), text=(6, 1.0)), seed=0)


@pytest.mark.parametrize("propagation", ["segment_sum", "sparse"])
def test_forward_and_scores_equal_dense_reference(propagation):
    dataset = small_dataset()
    config = freedom_config_small(propagation=propagation, knn_k=3, n_mm_layers=2, n_ui_layers=2)
    model = build_model(config.model, dataset)
    params = model.init(jax.random.PRNGKey(0))
    users, items = jax.jit(model.score_state)(params, model.consts)
    u, i = dataset.num_users, dataset.num_items
    a = dense_normalized(dataset.train, u, i)
    s = 0.1 * dense_adjacency(knn_item_graph(dataset.features["image"], k=3, weighted=False)) + \
        0.9 * dense_adjacency(knn_item_graph(dataset.features["text"], k=3, weighted=False))
    np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-6)  # binary kNN: every entry 1/k
    e_u, e_i = np.asarray(params["params"]["user_embedding"]), np.asarray(params["params"]["item_embedding"])
    e = np.concatenate([e_u, e_i])
    light = np.mean([np.linalg.matrix_power(a, layer) @ e for layer in range(3)], axis=0)
    np.testing.assert_allclose(users, light[:u], atol=1e-5)
    np.testing.assert_allclose(items, light[u:] + s @ s @ e_i, atol=1e-5)
    scores = model.score_fn((users, items), jnp.arange(u))
    np.testing.assert_allclose(scores, light[:u] @ (light[u:] + s @ s @ e_i).T, atol=1e-5)


def test_prepare_epoch_drops_edges_and_scoring_keeps_the_full_graph():
    dataset = small_dataset()
    model = build_model(freedom_config_small(propagation="segment_sum").model, dataset)
    dropped = jax.jit(model.prepare_epoch)(model.consts, jax.random.PRNGKey(3))
    assert dropped.graph.senders.shape == (2 * int(len(dataset.train) * 0.2),)
    assert model.consts.graph.senders.shape == (2 * len(dataset.train),)
    again = jax.jit(model.prepare_epoch)(model.consts, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(dropped.graph.senders, again.graph.senders)  # a function of the RNG
    params = model.init(jax.random.PRNGKey(0))
    batch = {"users": jnp.array([0, 1]), "positives": jnp.array([0, 1]), "negatives": jnp.array([2, 3]),
             "weights": jnp.ones(2)}
    train_loss, _ = model.loss(params, dropped, batch, jax.random.PRNGKey(0), None)
    full_loss, _ = model.loss(params, model.consts, batch, jax.random.PRNGKey(0), None)
    assert float(train_loss) != float(full_loss)
    # dropout 0: MMRec trains on the full graph.
    full = build_model(freedom_config_small(dropout=0.0).model, dataset)
    assert full.prepare_epoch(full.consts, jax.random.PRNGKey(0)) is full.consts


def nonzero_leaves(grads) -> dict[str, bool]:
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    return {jax.tree_util.keystr(path): bool(jnp.any(leaf != 0)) for path, leaf in flat}


@pytest.mark.parametrize("modalities", [dict(text=(6, 1.0)), dict(image=(8, 0.5), text=(6, 1.0), audio=(5, 0.8))])
def test_loss_finite_and_every_parameter_gets_a_gradient(modalities):
    dataset = small_dataset(modalities)
    model = build_model(freedom_config_small(reg_weight=0.1).model, dataset)
    params = model.init(jax.random.PRNGKey(0))
    names = set(params["params"])
    assert names == {"user_embedding", "item_embedding"} | {f"{m}_projection" for m in modalities} | \
        {f"{m}_features" for m in modalities}
    batch = {"users": jnp.arange(8), "positives": jnp.asarray(dataset.train[:8, 1]),
             "negatives": jnp.arange(8) + 10, "weights": jnp.ones(8)}
    consts = model.prepare_epoch(model.consts, jax.random.PRNGKey(1))
    (loss, parts), grads = jax.jit(jax.value_and_grad(model.loss, has_aux=True))(params, consts, batch,
                                                                                 jax.random.PRNGKey(0))
    assert np.isfinite(float(loss)) and set(parts) == {"bpr", "modality_bpr"}
    np.testing.assert_allclose(loss, parts["bpr"] + 0.1 * parts["modality_bpr"], rtol=1e-6)
    assert all(nonzero_leaves(grads).values()), nonzero_leaves(grads)


def test_reg_weight_zero_has_no_projection_terms():
    dataset = small_dataset()
    model = build_model(freedom_config_small(reg_weight=0.0).model, dataset)
    params = model.init(jax.random.PRNGKey(0))
    assert set(params["params"]) == {"user_embedding", "item_embedding"}
    batch = {"users": jnp.arange(4), "positives": jnp.arange(4), "negatives": jnp.arange(4) + 4,
             "weights": jnp.ones(4)}
    _, parts = model.loss(params, model.consts, batch, jax.random.PRNGKey(0), None)
    assert set(parts) == {"bpr"}


def test_frozen_features_are_not_parameters():
    dataset = small_dataset()
    model = build_model(freedom_config_small(reg_weight=0.1, train_features=False).model, dataset)
    assert set(model.init(jax.random.PRNGKey(0))["params"]) == {"user_embedding", "item_embedding",
                                                               "image_projection", "text_projection"}


@pytest.mark.parametrize("field, value", [("dropout", 1.0), ("dropout", -0.5), ("knn_k", 0), ("n_ui_layers", -1),
                                          ("n_mm_layers", -1), ("mm_image_weight", 1.5),
                                          ("propagation", "dense")])
def test_bad_config_values_raise_config_error(field, value):
    with pytest.raises(ConfigError, match=f"model.{field}"):
        build_model(freedom_config_small(**{field: value}).model, small_dataset())


def test_training_learns_on_synthetic_data(tmp_path):
    config = freedom_config_small()
    config.train.num_epochs = 3
    results = train_and_evaluate(config, str(tmp_path))
    # Random ranking of 150 items gives recall@20 ~ 0.13 on average.
    assert results["valid"]["recall@20"] > 0.3
    assert results["test"]["recall@20"] > 0.3
