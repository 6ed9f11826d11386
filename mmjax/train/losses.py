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

LOSS_SCOPE = "loss_terms"  # the loss terms' name scope in compiled programs (profiles read it)


def batch_sum(values: jax.Array, axis_name: str | None = None, axis: int | None = None) -> jax.Array:
    """Sum of `values` over the global batch: this shard's sum, plus the other devices' when mapped.

    `axis`: sum only over that (batch) axis, keeping the others (e.g. per-expert totals).
    """
    total = jnp.sum(values, axis=axis)
    return total if axis_name is None else jax.lax.psum(total, axis_name)


@jax.named_scope(LOSS_SCOPE)
def bpr_loss(positive_scores: jax.Array, negative_scores: jax.Array, weights: jax.Array,
             axis_name: str | None = None) -> jax.Array:
    """-mean log sigmoid(s_pos - s_neg) over the real rows of the global batch."""
    per_row = -jax.nn.log_sigmoid(positive_scores - negative_scores)
    return batch_sum(per_row * weights, axis_name) / jnp.maximum(batch_sum(weights, axis_name), 1.0)


@jax.named_scope(LOSS_SCOPE)
def embedding_norm_penalty(tables: tuple[jax.Array, ...], weights: jax.Array,
                           axis_name: str | None = None) -> jax.Array:
    """Sum of the Frobenius norms of the global batch's embedding rows, divided by the batch size.

    MMRec's EmbLoss: the norms are not squared.
    """
    row_weights = weights[:, None]
    norms = [jnp.sqrt(batch_sum(row_weights * jnp.square(table), axis_name)) for table in tables]
    return sum(norms) / jnp.maximum(batch_sum(weights, axis_name), 1.0)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows divided by max(‖row‖, eps), as torch.nn.functional.normalize; an all-zero row (e.g. one that
    dropout zeroed) stays zero with a zero gradient, where the norm's own gradient would be NaN."""
    squares = jnp.sum(x * x, axis=-1, keepdims=True)
    norm = jnp.where(squares > 0, jnp.sqrt(jnp.where(squares > 0, squares, 1.0)), 0.0)
    return x / jnp.maximum(norm, eps)


@jax.named_scope(LOSS_SCOPE)
def info_nce(view1: jax.Array, view2: jax.Array, weights: jax.Array, temperature: float,
             axis_name: str | None = None, labels: jax.Array | None = None,
             row_scale: jax.Array | None = None) -> jax.Array:
    """Mean over the global batch's real rows of -log softmax_j(cos(v1_i, v2_j) / t) at j = i.

    The candidates j are every real row of the global batch (duplicates included, as MMRec). Under
    data parallelism each device scores its rows of view1 against view2 gathered from all devices, so
    the loss equals the unsharded one; padding rows (weight 0) are neither scored nor candidates.
    `labels` [B]: rows j != i with row i's label are not negatives (false-negative masking, as HM4SR's
    sequence contrast masks other sequences with the same target). `row_scale` [B]: each row's term is
    multiplied by it before the mean (EGRA's entity-level alignment weights); candidates are unchanged.
    """
    view1, view2 = l2_normalize(view1), l2_normalize(view2)
    candidates, candidate_weights, candidate_labels = view2, weights, labels
    if axis_name is not None:
        candidates = jax.lax.all_gather(view2, axis_name, tiled=True)
        candidate_weights = jax.lax.all_gather(weights, axis_name, tiled=True)
        if labels is not None:
            candidate_labels = jax.lax.all_gather(labels, axis_name, tiled=True)
    logits = (view1 @ candidates.T) / temperature
    logits = jnp.where(candidate_weights[None, :] > 0, logits, -jnp.inf)
    if labels is not None:  # drop same-label candidates; the row's own positive is added back below
        logits = jnp.where(labels[:, None] == candidate_labels[None, :], -jnp.inf, logits)
        positive_logit = jnp.sum(view1 * view2, axis=-1, keepdims=True) / temperature
        logits = jnp.concatenate([logits, positive_logit], axis=1)
    positive = jnp.sum(view1 * view2, axis=-1) / temperature
    per_row = jnp.where(weights > 0, jax.nn.logsumexp(logits, axis=-1) - positive, 0.0)
    if row_scale is not None:
        per_row = per_row * row_scale
    return batch_sum(per_row * weights, axis_name) / jnp.maximum(batch_sum(weights, axis_name), 1.0)


@jax.named_scope(LOSS_SCOPE)
def squared_norm_penalty(tables: tuple[jax.Array, ...], weights: jax.Array,
                         axis_name: str | None = None) -> jax.Array:
    """½ Σ of the squared norms of the global batch's real rows, over the global batch size.

    Squared, unlike EmbLoss (MGCN's and LightGCN's L2), divided by the configured batch size, which is
    the padded global batch's size (padding rows, weight 0, add nothing to the sum), as MMRec does.
    """
    squares = sum(jnp.sum(jnp.square(table), axis=-1) for table in tables)
    return 0.5 * batch_sum(squares * weights, axis_name) / batch_sum(jnp.ones_like(weights), axis_name)
