"""FREEDOM's degree-sensitive edge dropout of the user-item graph, redrawn inside the compiled epoch.

Of the E train edges a fixed number is kept, drawn without replacement with probability proportional to
1/sqrt(deg_u deg_i) (so edges between popular nodes are dropped more often); the kept edges are then
normalised symmetrically by the degrees of the kept graph and used in both directions. Everything is
jittable with static shapes: the kept graph always has 2 * num_keep directed edges.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from flax import struct
from jax.experimental import sparse

from mmjax.errors import ConfigError, DataError
from mmjax.graph.propagate import PROPAGATION_KINDS, BipartiteAdjacency, Graph, SparseAdjacency

# Added to the kept degrees before the inverse square root, as MMRec does (keeps empty rows finite).
DEGREE_EPS = 1e-7


@struct.dataclass
class BipartiteEdges:
    """The undirected train edges (user, item), each with its sampling weight."""

    users: jax.Array  # [E] int32, user ids
    items: jax.Array  # [E] int32, item ids (not offset by num_users)
    weights: jax.Array  # [E] float32, proportional to the probability of keeping the edge first
    num_users: int = struct.field(pytree_node=False)
    num_items: int = struct.field(pytree_node=False)


def bipartite_edges(train_pairs: np.ndarray, num_users: int, num_items: int) -> BipartiteEdges:
    """Host side, once: the train pairs with weights (deg_u + eps)^-1/2 (deg_i + eps)^-1/2 (MMRec's)."""
    pairs = np.asarray(train_pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise DataError(f"train pairs: expected a non-empty [n, 2] array, got shape {pairs.shape}")
    users, items = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    user_degree = np.bincount(users, minlength=num_users).astype(np.float64)
    item_degree = np.bincount(items, minlength=num_items).astype(np.float64)
    weights = (user_degree[users] + DEGREE_EPS) ** -0.5 * (item_degree[items] + DEGREE_EPS) ** -0.5
    return BipartiteEdges(users=jnp.asarray(users, jnp.int32), items=jnp.asarray(items, jnp.int32),
                          weights=jnp.asarray(weights, jnp.float32), num_users=num_users, num_items=num_items)


def kept_edge_count(num_edges: int, dropout: float) -> int:
    """int(E * (1 - dropout)), MMRec's count; ConfigError (model.dropout) unless 0 <= dropout and >= 1 edge stays."""
    keep = int(num_edges * (1.0 - dropout))
    if not 0.0 <= dropout < 1.0 or keep < 1:
        raise ConfigError(f"model.dropout: expected 0 <= dropout < 1 keeping at least one of {num_edges} edges, "
                          f"got {dropout}")
    return keep


def sample_without_replacement(rng: jax.Array, weights: jax.Array, num_keep: int) -> jax.Array:
    """Indices of num_keep entries drawn without replacement with probability proportional to weights.

    Gumbel-top-k: the num_keep largest log w + Gumbel noise are distributed as successive weighted draws
    without replacement (what torch.multinomial(weights, num_keep) samples).
    """
    keys = jnp.log(weights) + jax.random.gumbel(rng, weights.shape, weights.dtype)
    return jax.lax.top_k(keys, num_keep)[1]


def normalized_bipartite(users: jax.Array, items: jax.Array, num_users: int, num_items: int,
                         kind: str) -> Graph:
    """Â of the given (distinct) user-item edges in both directions, normalised by their own degrees.

    Nodes are users then items (item i is node num_users + i), as in user_item_graph. `kind` is the
    representation: a GraphsTuple ('segment_sum') or a CSR SparseAdjacency ('sparse', symmetric, so no
    transpose is stored), or its two blocks ('blocks', a BipartiteAdjacency: the same rows and order).
    """
    num_nodes = num_users + num_items
    ones = jnp.ones(users.shape, jnp.float32)
    user_degree = jax.ops.segment_sum(ones, users, num_segments=num_users)
    item_degree = jax.ops.segment_sum(ones, items, num_segments=num_items)
    values = (jax.lax.rsqrt(user_degree[users] + DEGREE_EPS) * jax.lax.rsqrt(item_degree[items] + DEGREE_EPS))
    item_nodes = items + num_users
    senders = jnp.concatenate([users, item_nodes])
    receivers = jnp.concatenate([item_nodes, users])
    edges = jnp.concatenate([values, values])
    if kind == "segment_sum":
        n_edge = jnp.array([senders.shape[0]], jnp.int32)
        return jraph.GraphsTuple(nodes=None, edges=edges, senders=senders, receivers=receivers, globals=None,
                                 n_node=jnp.array([num_nodes], jnp.int32), n_edge=n_edge)
    if kind == "blocks":  # the two blocks of the same Â (BipartiteAdjacency), each a canonical CSR
        def block(rows: jax.Array, cols: jax.Array, num_rows: int, num_cols: int) -> sparse.BCSR:
            order = jnp.lexsort((cols, rows))
            indptr = jnp.searchsorted(rows[order], jnp.arange(num_rows + 1, dtype=rows.dtype), side="left")
            return sparse.BCSR((values[order], cols[order].astype(jnp.int32), indptr.astype(jnp.int32)),
                               shape=(num_rows, num_cols), indices_sorted=True, unique_indices=True)

        user_items, item_users = block(users, items, num_users, num_items), block(items, users, num_items, num_users)
        return BipartiteAdjacency(user_items=SparseAdjacency(matrix=user_items, transpose=item_users),
                                  item_users=SparseAdjacency(matrix=item_users, transpose=user_items))
    if kind == "sparse":
        order = jnp.lexsort((senders, receivers))  # rows, then columns within a row: canonical CSR
        rows = receivers[order]
        indptr = jnp.searchsorted(rows, jnp.arange(num_nodes + 1, dtype=rows.dtype), side="left")
        matrix = sparse.BCSR((edges[order], senders[order].astype(jnp.int32), indptr.astype(jnp.int32)),
                             shape=(num_nodes, num_nodes), indices_sorted=True, unique_indices=True)
        return SparseAdjacency(matrix=matrix)
    raise ConfigError(f"model.propagation: expected one of {PROPAGATION_KINDS}, got {kind!r}")


def degree_sensitive_dropout(edges: BipartiteEdges, rng: jax.Array, num_keep: int, kind: str) -> Graph:
    """The normalised graph of num_keep edges kept with probability proportional to edges.weights."""
    kept = sample_without_replacement(rng, edges.weights, num_keep)
    return normalized_bipartite(edges.users[kept], edges.items[kept], edges.num_users, edges.num_items, kind)
