"""Propagation of node features over a weighted graph: x' = Â x.

Two representations of Â, one dispatch. A jraph.GraphsTuple takes the reference path (a segment
sum of weighted sender rows at their receivers, the jraph way). A SparseAdjacency, built once on the
host from the same GraphsTuple, takes the fast path: a CSR product (native CSR kernel on CPU) with a
custom backward, since autodiff through the sparse product is several times slower than the product.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import scipy.sparse
from flax import struct
from jax.experimental import sparse

from mmjax.errors import ConfigError

PROPAGATION_KINDS = ("segment_sum", "sparse")
# Entries of Â and Âᵀ this close (relative) count as equal: float32 rounding of D^-1/2 A D^-1/2.
SYMMETRY_RTOL = 1e-6
PROPAGATION_SCOPE = "propagation"  # the ops' name scope in compiled programs (profiles read it)


@struct.dataclass
class SparseAdjacency:
    """Â (rows = receivers, cols = senders) as CSR, and Âᵀ only when Â is not symmetric (else None)."""

    matrix: sparse.BCSR
    transpose: sparse.BCSR | None = None


Graph = jraph.GraphsTuple | SparseAdjacency


def propagate_segment_sum(graph: jraph.GraphsTuple, x: jax.Array) -> jax.Array:
    """Reference path: each edge sends weight * x[sender], summed at its receiver (the jraph way).

    indices_are_sorted stays False: any GraphsTuple is accepted, and though user_item_graph and
    knn_item_graph sort edges by receiver, the sorted variant measured no faster on CPU.
    """
    with jax.named_scope(PROPAGATION_SCOPE):
        messages = x[graph.senders] * graph.edges[:, None].astype(x.dtype)
        return jax.ops.segment_sum(messages, graph.receivers, num_segments=x.shape[0],
                                   indices_are_sorted=False)


def _canonical_csr(matrix: scipy.sparse.spmatrix) -> scipy.sparse.csr_matrix:
    """CSR with duplicates summed, explicit zeros dropped and column indices sorted in each row."""
    csr = scipy.sparse.csr_matrix(matrix)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _is_symmetric(matrix: scipy.sparse.csr_matrix, transpose: scipy.sparse.csr_matrix) -> bool:
    """Same sparsity pattern and values equal up to SYMMETRY_RTOL (both canonical CSR)."""
    return (np.array_equal(matrix.indptr, transpose.indptr) and np.array_equal(matrix.indices, transpose.indices)
            and np.allclose(matrix.data, transpose.data, rtol=SYMMETRY_RTOL, atol=0.0))


def _to_bcsr(matrix: scipy.sparse.csr_matrix) -> sparse.BCSR:
    """A canonical scipy CSR (sorted, unique indices) as a BCSR with int32 indices and indptr.

    Equal index dtypes (and data dtype = rhs dtype, see _product) select jax's native CSR kernel on CPU.
    """
    return sparse.BCSR((jnp.asarray(matrix.data, jnp.float32), jnp.asarray(matrix.indices, jnp.int32),
                        jnp.asarray(matrix.indptr, jnp.int32)),
                       shape=matrix.shape, indices_sorted=True, unique_indices=True)


def sparse_adjacency(graph: jraph.GraphsTuple) -> SparseAdjacency:
    """Host-side, once: Â of a weighted GraphsTuple as CSR, duplicate edges summed as segment_sum does."""
    num_nodes = int(np.sum(graph.n_node))
    edges = (np.asarray(graph.edges, np.float64), (np.asarray(graph.receivers), np.asarray(graph.senders)))
    matrix = _canonical_csr(scipy.sparse.coo_matrix(edges, shape=(num_nodes, num_nodes)))
    transpose = _canonical_csr(matrix.T)
    if _is_symmetric(matrix, transpose):
        return SparseAdjacency(matrix=_to_bcsr(matrix))
    return SparseAdjacency(matrix=_to_bcsr(matrix), transpose=_to_bcsr(transpose))


def _product(matrix: sparse.BCSR, x: jax.Array) -> jax.Array:
    """matrix @ x in x's dtype, as the reference path casts edge weights to x's dtype."""
    with jax.named_scope(PROPAGATION_SCOPE):
        cast = sparse.BCSR((matrix.data.astype(x.dtype), matrix.indices, matrix.indptr), shape=matrix.shape,
                           indices_sorted=matrix.indices_sorted, unique_indices=matrix.unique_indices)
        return cast @ x


@jax.custom_vjp
def _propagate_csr(matrix: sparse.BCSR, transpose: sparse.BCSR, x: jax.Array) -> jax.Array:
    """matrix @ x, differentiable in x only: the backward is transpose @ g, another forward product."""
    return _product(matrix, x)


def _propagate_csr_fwd(matrix: sparse.BCSR, transpose: sparse.BCSR,
                       x: jax.Array) -> tuple[jax.Array, sparse.BCSR]:
    return _product(matrix, x), transpose


def _propagate_csr_bwd(transpose: sparse.BCSR, g: jax.Array) -> tuple[None, None, jax.Array]:
    # None: zero cotangents for the adjacency, a constant of the graph, never trained.
    return None, None, _product(transpose, g)


_propagate_csr.defvjp(_propagate_csr_fwd, _propagate_csr_bwd)


@struct.dataclass
class BipartiteAdjacency:
    """Â of a user-item graph (users first, no user-user or item-item edges) as its two blocks:
    user_items = R̂ (users x items) and item_users = R̂ᵀ, each the other's transpose. Then
    Â [u; i] = [R̂ i; R̂ᵀ u] needs no concatenated [U + I] table, nor the split of its gradient; each block's
    rows are the rows of Â, so every product sums the same terms in the same order as the square CSR."""

    user_items: SparseAdjacency
    item_users: SparseAdjacency


def bipartite_adjacency(graph: jraph.GraphsTuple, num_users: int) -> BipartiteAdjacency:
    """Host-side, once: the two blocks of a user-item GraphsTuple over U + I nodes (ValueError when it has
    edges within the users or within the items)."""
    num_nodes = int(np.sum(graph.n_node))
    receivers, senders = np.asarray(graph.receivers), np.asarray(graph.senders)
    if np.any((receivers < num_users) == (senders < num_users)):
        raise ValueError("bipartite_adjacency: the graph has user-user or item-item edges")
    edges = (np.asarray(graph.edges, np.float64), (receivers, senders))
    matrix = _canonical_csr(scipy.sparse.coo_matrix(edges, shape=(num_nodes, num_nodes)))
    user_items = _canonical_csr(matrix[:num_users, num_users:])
    item_users = _canonical_csr(matrix[num_users:, :num_users])
    users_block, items_block = _to_bcsr(user_items), _to_bcsr(item_users)
    return BipartiteAdjacency(user_items=SparseAdjacency(matrix=users_block, transpose=items_block),
                              item_users=SparseAdjacency(matrix=items_block, transpose=users_block))


def lightgcn_layers_bipartite(graph: BipartiteAdjacency, users: jax.Array, items: jax.Array,
                              num_layers: int) -> tuple[jax.Array, jax.Array]:
    """lightgcn_layers over a BipartiteAdjacency, on the user and item tables kept apart: (users, items)
    equal to the halves of lightgcn_layers(Â, [users; items])."""
    user_layers, item_layers = [users], [items]
    for _ in range(num_layers):
        users, items = propagate_sparse(graph.user_items, items), propagate_sparse(graph.item_users, users)
        user_layers.append(users)
        item_layers.append(items)
    return jnp.mean(jnp.stack(user_layers, axis=0), axis=0), jnp.mean(jnp.stack(item_layers, axis=0), axis=0)


def lightgcn_user_item(graph: Graph | BipartiteAdjacency, users: jax.Array, items: jax.Array,
                       num_layers: int) -> tuple[jax.Array, jax.Array]:
    """(users, items) of lightgcn_layers over a user-item graph: over its two blocks when it is a
    BipartiteAdjacency, else over [users; items] split back."""
    if isinstance(graph, BipartiteAdjacency):
        return lightgcn_layers_bipartite(graph, users, items, num_layers)
    final = lightgcn_layers(graph, jnp.concatenate([users, items], axis=0), num_layers)
    return final[:users.shape[0]], final[users.shape[0]:]


def propagate_sparse(adj: SparseAdjacency, x: jax.Array) -> jax.Array:
    """Fast path: Â x, with gradient Âᵀ g wrt x (Â itself when symmetric); no gradient wrt Â."""
    transpose = adj.matrix if adj.transpose is None else adj.transpose
    return _propagate_csr(adj.matrix, transpose, x)


def propagate(graph: Graph, x: jax.Array) -> jax.Array:
    """Â x by the path matching the graph's type (chosen at trace time)."""
    if isinstance(graph, SparseAdjacency):
        return propagate_sparse(graph, x)
    return propagate_segment_sum(graph, x)


def propagation_graph(graph: jraph.GraphsTuple, kind: str) -> Graph:
    """The graph in the representation named by config model.propagation ('segment_sum' or 'sparse')."""
    if kind == "segment_sum":
        return graph
    if kind == "sparse":
        return sparse_adjacency(graph)
    raise ConfigError(f"model.propagation: expected one of {PROPAGATION_KINDS}, got {kind!r}")


def lightgcn_layers(graph: Graph, x0: jax.Array, num_layers: int,
                    propagate: Callable[[Graph, jax.Array], jax.Array] = propagate) -> jax.Array:
    """Mean of the layer outputs [x0, Âx0, ..., Â^L x0], LightGCN's layer combination."""
    layers = [x0]
    x = x0
    for _ in range(num_layers):
        x = propagate(graph, x)
        layers.append(x)
    return jnp.mean(jnp.stack(layers, axis=0), axis=0)
