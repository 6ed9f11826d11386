"""Losses shared by the models, written over weighted batches (weight 0 = padding row).

Under data parallelism every device holds a shard of the global batch. Each batch reduction goes
through `batch_sum(..., axis_name)`, which sums over all devices' shards, so every device computes the
loss of the whole global batch; averaging the devices' gradients (`lax.pmean`) then gives that loss's
exact gradient, whatever the shard sizes and however non-linear the loss is in the batch (e.g. the
norm below). With `axis_name=None` the batch is whole and nothing is communicated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def batch_sum(values: jax.Array, axis_name: str | None = None) -> jax.Array:
    """Sum of `values` over the global batch: this shard's sum, plus the other devices' when mapped."""
    total = jnp.sum(values)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


def bpr_loss(positive_scores: jax.Array, negative_scores: jax.Array, weights: jax.Array,
             axis_name: str | None = None) -> jax.Array:
    """-mean log sigmoid(s_pos - s_neg) over the real rows of the global batch."""
    per_row = -jax.nn.log_sigmoid(positive_scores - negative_scores)
    return batch_sum(per_row * weights, axis_name) / jnp.maximum(batch_sum(weights, axis_name), 1.0)


def embedding_norm_penalty(tables: tuple[jax.Array, ...], weights: jax.Array,
                           axis_name: str | None = None) -> jax.Array:
    """Sum of the Frobenius norms of the global batch's embedding rows, divided by the batch size.

    MMRec's EmbLoss: the norms are not squared.
    """
    row_weights = weights[:, None]
    norms = [jnp.sqrt(batch_sum(row_weights * jnp.square(table), axis_name)) for table in tables]
    return sum(norms) / jnp.maximum(batch_sum(weights, axis_name), 1.0)


def squared_norm_penalty(tables: tuple[jax.Array, ...], weights: jax.Array,
                         axis_name: str | None = None) -> jax.Array:
    """½ Σ ||row||² over the global batch's rows of every table, divided by the batch size (LightGCN's L2)."""
    row_weights = weights[:, None]
    total = sum(batch_sum(row_weights * jnp.square(table), axis_name) for table in tables)
    return 0.5 * total / jnp.maximum(batch_sum(weights, axis_name), 1.0)
