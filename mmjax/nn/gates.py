"""Fusion of per-modality item vectors: a learned gate (vector or scalar), mean, sum or concat+linear."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

FUSIONS = ("gate", "mean", "sum", "concat")
GATES = ("vector", "scalar")


class ModalityFusion(nn.Module):
    """Fuses modality vectors [M, n, d] into [n, d]; also returns the weight each modality received.

    gate: softmax over modalities of logits computed from [p_1 ‖ … ‖ p_M], per dimension ("vector",
    weights [n, M, d]) or per item ("scalar", [n, M, 1]); with two modalities this is exactly the
    sigmoid gate g·p_1 + (1 − g)·p_2 of a linear map of [p_1 ‖ p_2]. mean / sum: fixed weights 1/M / 1;
    concat: a linear map of the concatenation (weights reported as 1/M, they are not separable).
    """

    fusion: str = "gate"
    gate: str = "vector"
    kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()

    @nn.compact
    def __call__(self, modalities: jax.Array) -> tuple[jax.Array, jax.Array]:
        num_modalities, num_rows, dim = modalities.shape
        joined = jnp.moveaxis(modalities, 0, 1).reshape(num_rows, num_modalities * dim)
        if self.fusion == "gate":
            width = dim if self.gate == "vector" else 1
            logits = nn.Dense(num_modalities * width, kernel_init=self.kernel_init, name="gate")(joined)
            weights = jax.nn.softmax(logits.reshape(num_rows, num_modalities, width), axis=1)
            return jnp.sum(weights * jnp.moveaxis(modalities, 0, 1), axis=1), weights
        uniform = jnp.full((num_rows, num_modalities, 1), 1.0 / num_modalities, modalities.dtype)
        if self.fusion == "mean":
            return jnp.mean(modalities, axis=0), uniform
        if self.fusion == "sum":
            return jnp.sum(modalities, axis=0), jnp.ones_like(uniform)
        return nn.Dense(dim, kernel_init=self.kernel_init, name="concat")(joined), uniform


def common_specific_side(views: list[jax.Array], behaviour: jax.Array, query_hidden, query_score,
                         preferences) -> jax.Array:
    """MGCN's side view of [n, d] modality views: (common + Σ_m σ(P_m h) ⊙ (view_m - common)) / (M + 1).

    common is the views' attention-weighted sum (softmax over modalities of query_score(tanh(query_hidden
    (view)))); each modality keeps what it adds beyond the common part, gated per dimension by the
    behaviour vectors h through its own `preferences` layer. The layers are passed in, so the caller's
    parameter names stay its own.
    """
    scores = jnp.concatenate([query_score(jnp.tanh(query_hidden(view))) for view in views], axis=-1)
    attention = jax.nn.softmax(scores, axis=-1)
    common = sum(attention[:, m:m + 1] * view for m, view in enumerate(views))
    specific = [nn.sigmoid(preference(behaviour)) * (view - common) for preference, view in zip(preferences, views)]
    return (sum(specific) + common) / (len(views) + 1)
