"""Graph construction and propagation against dense numpy computations."""

import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.errors import DataError
from mmjax.graph import dense_adjacency, knn_item_graph, lightgcn_layers, propagate_segment_sum, user_item_graph


def small_pairs():
    # 4 users, 5 items; item 4 has no interaction, user 3 has one.
    return np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2], [2, 3], [3, 3]], dtype=np.int32)


def dense_normalised(pairs, num_users, num_items):
    n = num_users + num_items
    a = np.zeros((n, n))
    for u, i in pairs:
        a[u, num_users + i] = a[num_users + i, u] = 1.0
    degree = a.sum(axis=1)
    inv_sqrt = np.where(degree > 0, degree, 1.0) ** -0.5 * (degree > 0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def test_user_item_graph_is_symmetric_normalised_adjacency():
    graph = user_item_graph(small_pairs(), 4, 5)
    expected = dense_normalised(small_pairs(), 4, 5)
    np.testing.assert_allclose(dense_adjacency(graph), expected, atol=1e-6)
    assert graph.n_edge[0] == 2 * len(small_pairs())
    assert np.all(np.diff(graph.receivers) >= 0)  # sorted by receiver


def test_isolated_item_row_is_zero():
    dense = dense_adjacency(user_item_graph(small_pairs(), 4, 5))
    assert np.all(dense[4 + 4] == 0) and np.all(dense[:, 4 + 4] == 0)


def test_segment_sum_propagation_equals_dense_product():
    rng = np.random.default_rng(0)
    graph = user_item_graph(small_pairs(), 4, 5)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    a = dense_normalised(small_pairs(), 4, 5)
    np.testing.assert_allclose(propagate_segment_sum(graph, jnp.asarray(x)), a @ x, atol=1e-5)
    expected = (x + a @ x + a @ a @ x) / 3
    np.testing.assert_allclose(lightgcn_layers(graph, jnp.asarray(x), 2), expected, atol=1e-5)


def test_user_item_graph_rejects_bad_pairs():
    with pytest.raises(DataError, match="duplicate"):
        user_item_graph(np.array([[0, 0], [0, 0]]), 2, 2)
    with pytest.raises(DataError, match="ids must lie"):
        user_item_graph(np.array([[0, 5]]), 2, 2)


def test_knn_graph_matches_dense_recipe():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(12, 6)).astype(np.float32)
    k = 4
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = x @ x.T
    kept = np.zeros_like(sim)
    for row in range(len(sim)):
        top = np.argsort(-sim[row], kind="stable")[:k]
        kept[row, top] = sim[row, top]
    assert np.all(np.diag(kept) > 0.99)  # self is kept
    degree = kept.sum(axis=1)
    expected = degree[:, None] ** -0.5 * kept * degree[None, :] ** -0.5
    for weighted, reference in ((True, expected), (False, None)):
        graph = knn_item_graph(features, k=k, weighted=weighted, block_size=5)
        dense = dense_adjacency(graph)
        if weighted:
            np.testing.assert_allclose(dense, reference, atol=1e-5)
        else:
            binary = (kept != 0).astype(float)
            d = binary.sum(axis=1)
            np.testing.assert_allclose(dense, d[:, None] ** -0.5 * binary * d[None, :] ** -0.5, atol=1e-6)
        assert np.all((dense != 0).sum(axis=1) == k)


def test_knn_graph_validates_k():
    with pytest.raises(DataError, match="knn k"):
        knn_item_graph(np.ones((3, 2), np.float32), k=4)
