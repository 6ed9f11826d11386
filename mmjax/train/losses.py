"""Losses shared by the models, written over weighted batches (weight 0 = padding row)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bpr_loss(positive_scores: jax.Array, negative_scores: jax.Array, weights: jax.Array) -> jax.Array:
    """-mean log sigmoid(s_pos - s_neg) over the real rows of the batch."""
    per_row = -jax.nn.log_sigmoid(positive_scores - negative_scores)
    return jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def embedding_norm_penalty(tables: tuple[jax.Array, ...], weights: jax.Array) -> jax.Array:
    """Sum of the Frobenius norms of the batch's embedding rows, divided by the batch size.

    MMRec's EmbLoss: the norms are not squared.
    """
    row_weights = weights[:, None]
    norms = [jnp.sqrt(jnp.sum(row_weights * jnp.square(table))) for table in tables]
    return sum(norms) / jnp.maximum(jnp.sum(weights), 1.0)
