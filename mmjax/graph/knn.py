"""Item-item kNN graphs from modality features (the LATTICE/FREEDOM/MGCN recipe)."""

from __future__ import annotations

import hashlib
from typing import Mapping

import jraph
import numpy as np
import scipy.sparse

from mmjax.errors import DataError
from mmjax.graph.bipartite import symmetric_weights


def top_k_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """int [rows, k]: each row's k largest entries, largest first, ties to the lower column: exactly the first
    k of a stable argsort of -scores, found by a partial selection (linear per row, not a full sort).

    A partial selection may pick any of several entries tied at the k-th value; the rows where it had to
    choose (more entries equal the k-th value than it took) take the lowest columns among them instead."""
    rows, cols = scores.shape
    if k == cols:
        return np.argsort(-scores, axis=1, kind="stable")
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, top, axis=1)
    kth = values.min(axis=1, keepdims=True)
    ambiguous = np.flatnonzero((scores == kth).sum(axis=1) > (values == kth).sum(axis=1))
    if len(ambiguous):
        top[ambiguous] = lowest_tied_columns(scores[ambiguous], kth[ambiguous], k)
        values[ambiguous] = np.take_along_axis(scores[ambiguous], top[ambiguous], axis=1)
    order = np.lexsort((top, -values), axis=1)  # value descending, then the lower column
    return np.take_along_axis(top, order, axis=1)


def lowest_tied_columns(scores: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """int [rows, k] (ascending columns): the entries above each row's k-th largest value `kth` [rows, 1],
    then as many of those equal to it as are needed, lowest columns first."""
    above = scores > kth
    tied = scores == kth
    needed = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= needed))
    return np.nonzero(chosen)[1].reshape(len(scores), k)


_EDGE_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_EDGE_CACHE_SIZE = 8


def knn_cosine_edges(features: np.ndarray, k: int = 10,
                     block_size: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(receivers, senders, cosines), read-only: each item's top-k most cosine-similar items, itself included
    (a top-k of a cosine matrix keeps the diagonal); ties prefer the lower item id.

    Remembered per (features' bytes, k) for the process: a model building several graphs from one modality
    (MAGNET's item graphs and its content view) selects its neighbours once."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"features: expected a 2-D [num_items, dim] array, got shape {x.shape}")
    key = (hashlib.sha256(np.ascontiguousarray(x).view(np.uint8)).hexdigest(), x.shape, int(k), int(block_size))
    if key not in _EDGE_CACHE:
        edges = _knn_cosine_edges(x, k, block_size)
        for array in edges:
            array.setflags(write=False)
        if len(_EDGE_CACHE) >= _EDGE_CACHE_SIZE:
            _EDGE_CACHE.pop(next(iter(_EDGE_CACHE)))
        _EDGE_CACHE[key] = edges
    return _EDGE_CACHE[key]


def _knn_cosine_edges(x: np.ndarray, k: int, block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """knn_cosine_edges, computed."""
    num_items = x.shape[0]
    if not 1 <= k <= num_items:
        raise DataError(f"knn k: expected 1 <= k <= {num_items} items, got {k}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    rows, cols, vals = [], [], []
    for start in range(0, num_items, block_size):
        sim = x[start:start + block_size] @ x.T
        top = top_k_stable(sim, k)
        rows.append(np.repeat(np.arange(start, start + len(sim)), k))
        cols.append(top.reshape(-1))
        vals.append(np.take_along_axis(sim, top, axis=1).reshape(-1))
    return (np.concatenate(rows).astype(np.int32), np.concatenate(cols).astype(np.int32),
            np.concatenate(vals).astype(np.float64))


def knn_item_graph(features: np.ndarray, k: int = 10, weighted: bool = True,
                   block_size: int = 2048) -> jraph.GraphsTuple:
    """kNN graph over items from cosine similarity of L2-normalised features.

    The knn_cosine_edges matrix S_k, not symmetrised, with values the cosine scores when `weighted`
    (MMRec's build_knn_normalized_graph) or 1 (FREEDOM's binary variant), normalised D^{-1/2} S_k D^{-1/2}
    with D the row sums of S_k.
    """
    receivers, senders, cosines = knn_cosine_edges(features, k, block_size)
    num_items = int(np.asarray(features).shape[0])
    values = cosines if weighted else np.ones(len(senders))
    weights = symmetric_weights(senders, receivers, values, num_items)
    return jraph.GraphsTuple(
        nodes=None, edges=weights, senders=senders, receivers=receivers, globals=None,
        n_node=np.array([num_items], dtype=np.int32), n_edge=np.array([len(senders)], dtype=np.int32))


def mixed_knn_graph(features: Mapping[str, np.ndarray], weights: Mapping[str, float], k: int = 10,
                    weighted: bool = True) -> jraph.GraphsTuple:
    """Σ_m weights[m] · S_m over the modalities' normalised kNN graphs (FREEDOM's frozen item-item graph).

    Edges present in several modalities' graphs are merged (weights summed); edges sorted by receiver.
    """
    if not weights:
        raise DataError("mixed_knn_graph: expected at least one modality weight")
    total = None
    for name, weight in weights.items():
        graph = knn_item_graph(features[name], k=k, weighted=weighted)
        n = int(graph.n_node[0])
        part = scipy.sparse.csr_matrix((weight * np.asarray(graph.edges, np.float64),
                                        (np.asarray(graph.receivers), np.asarray(graph.senders))), shape=(n, n))
        total = part if total is None else total + part
    total.sort_indices()
    receivers = np.repeat(np.arange(n), np.diff(total.indptr)).astype(np.int32)
    return jraph.GraphsTuple(
        nodes=None, edges=total.data.astype(np.float32), senders=total.indices.astype(np.int32),
        receivers=receivers, globals=None, n_node=np.array([n], dtype=np.int32),
        n_edge=np.array([len(receivers)], dtype=np.int32))
