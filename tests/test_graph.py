"""Graph construction and propagation against dense numpy computations."""

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest
import scipy.sparse

from mmjax.errors import ConfigError, DataError
from mmjax.graph import (SparseAdjacency, dense_adjacency, knn_item_graph, lightgcn_layers, mixed_knn_graph,
                         propagate_segment_sum, propagate_sparse, propagation_graph, sparse_adjacency,
                         user_item_graph)


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


def random_bipartite_graph(seed=2, num_users=180, num_items=140, num_pairs=1200):
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.integers(0, num_users, num_pairs), rng.integers(0, num_items, num_pairs)], axis=1)
    return user_item_graph(np.unique(pairs, axis=0), num_users, num_items)


def knn_graph():
    return knn_item_graph(np.random.default_rng(3).normal(size=(150, 8)).astype(np.float32), k=6)


def duplicate_edges_graph():
    # Edge 1 -> 0 appears twice; node 2 receives nothing (an empty row).
    return jraph.GraphsTuple(
        nodes=None, edges=np.array([0.5, 0.25, 0.25, 2.0], np.float32), senders=np.array([1, 1, 0, 2], np.int32),
        receivers=np.array([0, 0, 1, 1], np.int32), globals=None, n_node=np.array([3]), n_edge=np.array([4]))


def csr_to_dense(matrix):
    return scipy.sparse.csr_matrix((matrix.data, matrix.indices, matrix.indptr), shape=matrix.shape).toarray()


@jax.jit
def layers_and_gradient(graph, x, weights):
    """2 LightGCN layers and the gradient wrt x of a weighted sum of squares of their output."""
    def loss(x):
        return jnp.sum(weights * lightgcn_layers(graph, x, 2) ** 2)
    return lightgcn_layers(graph, x, 2), jax.grad(loss)(x)


@pytest.mark.parametrize("make_graph", [lambda: user_item_graph(small_pairs(), 4, 5), random_bipartite_graph,
                                        knn_graph, duplicate_edges_graph],
                         ids=["small", "random_bipartite", "knn", "duplicate_edges"])
def test_sparse_path_equals_segment_sum_in_values_and_gradients(make_graph):
    graph = make_graph()
    adj = sparse_adjacency(graph)  # passed to the jitted function as an argument: a pytree
    dense = dense_adjacency(graph)
    np.testing.assert_allclose(csr_to_dense(adj.matrix), dense, atol=1e-6)
    assert (adj.transpose is None) == np.allclose(dense, dense.T)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(len(dense), 5)), jnp.float32)
    weights = jnp.asarray(rng.uniform(size=(len(dense), 5)), jnp.float32)
    for fast, reference in zip(layers_and_gradient(adj, x, weights), layers_and_gradient(graph, x, weights)):
        np.testing.assert_allclose(fast, reference, atol=1e-5)


def test_symmetric_graph_stores_no_transpose_and_knn_graph_does():
    assert sparse_adjacency(random_bipartite_graph()).transpose is None
    dense = dense_adjacency(knn_graph())
    assert not np.allclose(dense, dense.T)  # so the knn case above checks the transpose path
    np.testing.assert_allclose(csr_to_dense(sparse_adjacency(knn_graph()).transpose), dense.T, atol=1e-6)


def test_sparse_propagation_eagerly_and_under_jit_with_the_adjacency_closed_over():
    graph = knn_graph()
    adj = sparse_adjacency(graph)
    x = jnp.asarray(np.random.default_rng(5).normal(size=(150, 3)), jnp.float32)
    reference = propagate_segment_sum(graph, x)
    np.testing.assert_allclose(propagate_sparse(adj, x), reference, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda x: propagate_sparse(adj, x))(x), reference, atol=1e-5)


def test_propagation_graph_by_kind():
    graph = user_item_graph(small_pairs(), 4, 5)
    assert propagation_graph(graph, "segment_sum") is graph
    assert isinstance(propagation_graph(graph, "sparse"), SparseAdjacency)
    with pytest.raises(ConfigError, match="model.propagation.*'segment_sum', 'sparse'.*'dense'"):
        propagation_graph(graph, "dense")


def test_mixed_knn_graph_is_the_weighted_sum_of_the_modality_graphs():
    rng = np.random.default_rng(2)
    features = {"image": rng.normal(size=(15, 6)).astype(np.float32),
                "text": rng.normal(size=(15, 4)).astype(np.float32)}
    mixed = mixed_knn_graph(features, {"image": 0.1, "text": 0.9}, k=3)
    expected = (0.1 * dense_adjacency(knn_item_graph(features["image"], k=3))
                + 0.9 * dense_adjacency(knn_item_graph(features["text"], k=3)))
    np.testing.assert_allclose(dense_adjacency(mixed), expected, atol=1e-6)
    assert np.all(np.diff(mixed.receivers) >= 0)


def test_partial_top_k_selection_equals_a_stable_full_sort_ties_included():
    """The kNN graphs' partial selection keeps exactly what a stable argsort of -scores keeps first:
    largest first, ties (many here: small integer scores, and -0.0 beside 0.0) to the lower column."""
    from mmjax.graph.knn import top_k_stable

    rng = np.random.default_rng(0)
    for trial in range(100):
        rows, cols = int(rng.integers(1, 20)), int(rng.integers(1, 40))
        k = int(rng.integers(1, cols + 1))
        scores = (rng.integers(-2, 3, (rows, cols)) if trial % 2 else rng.normal(size=(rows, cols))).astype(np.float32)
        scores[:, : cols // 3] *= -0.0 if trial % 3 == 0 else 1.0
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(top_k_stable(scores, k), expected)


def test_bipartite_blocks_give_the_square_products_bit_for_bit_in_values_and_gradients():
    from mmjax.graph import bipartite_adjacency, lightgcn_layers_bipartite

    rng = np.random.default_rng(7)
    num_users, num_items = 40, 30
    keys = rng.choice(num_users * num_items, 200, replace=False)
    graph = user_item_graph(np.stack([keys // num_items, keys % num_items], axis=1), num_users, num_items)
    square, blocks = sparse_adjacency(graph), bipartite_adjacency(graph, num_users)
    users = jnp.asarray(rng.normal(size=(num_users, 8)), jnp.float32)
    items = jnp.asarray(rng.normal(size=(num_items, 8)), jnp.float32)
    weights = jnp.asarray(rng.uniform(size=(num_users + num_items, 8)), jnp.float32)

    @jax.jit
    def both(users, items):
        def loss_square(users, items):
            return jnp.sum(weights * lightgcn_layers(square, jnp.concatenate([users, items]), 3) ** 2)

        def loss_blocks(users, items):
            final = jnp.concatenate(lightgcn_layers_bipartite(blocks, users, items, 3))
            return jnp.sum(weights * final ** 2)

        return (jax.value_and_grad(loss_square, argnums=(0, 1))(users, items),
                jax.value_and_grad(loss_blocks, argnums=(0, 1))(users, items),
                lightgcn_layers(square, jnp.concatenate([users, items]), 3),
                jnp.concatenate(lightgcn_layers_bipartite(blocks, users, items, 3)))

    (value_s, grads_s), (value_b, grads_b), final_s, final_b = both(users, items)
    np.testing.assert_array_equal(final_b, final_s)
    assert float(value_b) == float(value_s)
    for got, expected in zip(grads_b, grads_s):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="user-user or item-item"):
        bipartite_adjacency(knn_graph(), 2)
