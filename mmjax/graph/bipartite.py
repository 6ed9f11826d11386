"""The user-item interaction graph as a jraph.GraphsTuple with symmetric normalisation."""

from __future__ import annotations

import jraph
import numpy as np
import scipy.sparse

from mmjax.data.dataset import pair_keys
from mmjax.errors import DataError


def symmetric_weights(senders: np.ndarray, receivers: np.ndarray, values: np.ndarray,
                      num_nodes: int) -> np.ndarray:
    """Edge weights of D^{-1/2} A D^{-1/2}, D = row sums of A (rows = receivers); rows with sum <= 0 give 0."""
    degree = np.zeros(num_nodes, dtype=np.float64)
    np.add.at(degree, receivers, values)
    inv_sqrt = np.zeros_like(degree)
    positive = degree > 0
    inv_sqrt[positive] = degree[positive] ** -0.5
    return (inv_sqrt[receivers] * values * inv_sqrt[senders]).astype(np.float32)


def user_item_graph(train_pairs: np.ndarray, num_users: int, num_items: int) -> jraph.GraphsTuple:
    """Normalised bipartite graph over U + I nodes (users first, then items), both edge directions.

    Built from train interactions only. Edge e carries Â[receivers[e], senders[e]], so one
    propagation step is x' = Â x: a segment sum of weighted sender rows at their receivers.
    """
    pairs = np.asarray(train_pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise DataError(f"train pairs: expected a non-empty [n, 2] array, got shape {pairs.shape}")
    users = pairs[:, 0].astype(np.int64)
    items = pairs[:, 1].astype(np.int64)
    if users.min() < 0 or users.max() >= num_users or items.min() < 0 or items.max() >= num_items:
        raise DataError(f"train pairs: ids must lie in [0, {num_users}) x [0, {num_items})")
    if len(np.unique(pair_keys(pairs, num_items))) != len(pairs):
        raise DataError("train pairs: duplicate (user, item) rows; deduplicate before building the graph")
    num_nodes = num_users + num_items
    senders = np.concatenate([users, items + num_users])
    receivers = np.concatenate([items + num_users, users])
    # Edges sorted by receiver let segment sums take the sorted fast path.
    order = np.lexsort((senders, receivers))
    senders, receivers = senders[order].astype(np.int32), receivers[order].astype(np.int32)
    weights = symmetric_weights(senders, receivers, np.ones(len(senders)), num_nodes)
    return jraph.GraphsTuple(
        nodes=None, edges=weights, senders=senders, receivers=receivers, globals=None,
        n_node=np.array([num_nodes], dtype=np.int32), n_edge=np.array([len(senders)], dtype=np.int32))


def dense_adjacency(graph: jraph.GraphsTuple) -> np.ndarray:
    """The weighted adjacency as a dense matrix (rows = receivers); for tests and small graphs."""
    num_nodes = int(np.sum(graph.n_node))
    dense = np.zeros((num_nodes, num_nodes), dtype=np.float64)
    np.add.at(dense, (np.asarray(graph.receivers), np.asarray(graph.senders)), np.asarray(graph.edges))
    return dense


def user_item_block(graph: jraph.GraphsTuple, num_users: int) -> jraph.GraphsTuple:
    """R̂ = Â[:U, U:] as a graph over the same U + I nodes: only the item -> user edges of Â.

    Propagating [0; x_items] over it gives [R̂ x_items; 0], so R̂ works with either propagation kind.
    """
    keep = np.asarray(graph.receivers) < num_users
    return graph._replace(edges=np.asarray(graph.edges)[keep], senders=np.asarray(graph.senders)[keep],
                          receivers=np.asarray(graph.receivers)[keep],
                          n_edge=np.array([int(keep.sum())], dtype=np.int32))


def content_augmented_graph(train_pairs: np.ndarray, num_users: int, num_items: int,
                            item_edges: tuple[np.ndarray, np.ndarray, np.ndarray],
                            item_weight: float = 1.0, symmetrise: str = "mean") -> jraph.GraphsTuple:
    """Â_C: the user-item graph plus weighted item-item edges, symmetrically normalised as one graph.

    A_C = [[0, R], [Rᵀ, item_weight · S]] over U + I nodes, with S the item-item matrix given by
    `item_edges` = (receivers, senders, values) (item ids), symmetrised as (S + Sᵀ) / 2 ('mean') or
    max(S, Sᵀ) ('max') and without self-loops, so that item neighbours propagate into each other like
    co-interacted items.
    """
    if symmetrise not in ("mean", "max"):
        raise ValueError(f"symmetrise: expected 'mean' or 'max', got {symmetrise!r}")
    base = user_item_graph(train_pairs, num_users, num_items)  # validates the pairs
    receivers, senders, values = (np.asarray(a) for a in item_edges)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise DataError("item-item edges: expected finite, non-negative weights")
    n = num_users + num_items
    interactions = scipy.sparse.csr_matrix((np.ones(len(base.senders)), (np.asarray(base.receivers),
                                            np.asarray(base.senders))), shape=(n, n))
    off_diagonal = receivers != senders
    items = scipy.sparse.csr_matrix((values[off_diagonal], (receivers[off_diagonal] + num_users,
                                     senders[off_diagonal] + num_users)), shape=(n, n))
    if symmetrise == "mean":
        total = (interactions + 0.5 * item_weight * (items + items.T)).tocsr()
    else:
        total = (interactions + item_weight * items.maximum(items.T)).tocsr()
    total.eliminate_zeros()
    total.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(total.indptr)).astype(np.int32)
    cols = total.indices.astype(np.int32)
    weights = symmetric_weights(cols, rows, total.data, n)
    return jraph.GraphsTuple(nodes=None, edges=weights, senders=cols, receivers=rows, globals=None,
                             n_node=np.array([n], dtype=np.int32), n_edge=np.array([len(rows)], dtype=np.int32))
