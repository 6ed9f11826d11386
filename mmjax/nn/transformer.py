"""Causal self-attention blocks for sequential recommenders, laid out as RecBole's TransformerEncoder.

Post-norm layers (x = Norm(x + Dropout(Attention(x))); x = Norm(x + Dropout(FFN(x)))), weights initialised
N(0, 0.02) and biases 0 as RecBole's SASRec initialises them, exact (erf) GELU. The norm is LayerNorm or
DyT ("Transformers without Normalization": γ ⊙ tanh(α x) + β, α a learnt scalar), which CAMMSR uses.
Rows hold one or more histories (data/sequences.py: a left-padded window is one history per row, packed
training rows hold several), numbered by a segment id per token (0 = padding): a token attends to itself
and the earlier tokens of its own history.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mmjax.errors import ConfigError

NORMS = ("layernorm", "dyt")
DENSE_INIT = nn.initializers.normal(stddev=0.02)
MASKED_LOGIT = -1e9  # finite, so a padding query that may attend to nothing gets uniform weights, not NaN


class DyT(nn.Module):
    """Dynamic tanh: γ ⊙ tanh(α x) + β, α a scalar (init alpha0), γ = 1 and β = 0 per channel."""

    alpha0: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        alpha = self.param("alpha", nn.initializers.constant(self.alpha0), ())
        gamma = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        beta = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return gamma * jnp.tanh(alpha * x) + beta


def make_norm(kind: str, eps: float, name: str | None = None, alpha0: float = 0.5) -> nn.Module:
    """LayerNorm(eps) or DyT (α initialised at alpha0) by name; ConfigError for another."""
    if kind == "layernorm":
        return nn.LayerNorm(epsilon=eps, name=name)
    if kind == "dyt":
        return DyT(alpha0=alpha0, name=name)
    raise ConfigError(f"model.norm: expected one of {NORMS}, got {kind!r}")


def attention_mask(segments: jax.Array) -> jax.Array:
    """bool [R, 1, L, L]: query i may attend to key j when j <= i and both belong to the same history."""
    length = segments.shape[-1]
    causal = jnp.tril(jnp.ones((length, length), bool))
    same = (segments[:, :, None] == segments[:, None, :]) & (segments[:, None, :] > 0)
    return (causal[None] & same)[:, None]


def window_rows(history: jax.Array, pad_id: int = 0) -> tuple[jax.Array, jax.Array]:
    """(segments, positions) int32 [B, L] of left-padded windows, one history per row: segment 1 on the real
    items, and each real item's index counted from the window's first real item (0 on padding), the position
    ids RecBole's right-padded windows get."""
    length = history.shape[-1]
    real = history != pad_id
    positions = jnp.maximum(jnp.arange(length)[None, :] - (length - real.sum(axis=-1, keepdims=True)), 0)
    return real.astype(jnp.int32), positions.astype(jnp.int32)


class SelfAttention(nn.Module):
    """Multi-head self-attention with output projection, dropout, residual and norm (post-norm)."""

    num_heads: int
    attention_dropout: float
    hidden_dropout: float
    norm: str = "layernorm"
    eps: float = 1e-12

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool) -> jax.Array:
        batch, length, width = x.shape
        if width % self.num_heads:
            raise ConfigError(f"model.num_heads: {self.num_heads} does not divide the hidden size {width}")
        head = width // self.num_heads

        def project(name: str) -> jax.Array:
            y = nn.Dense(width, kernel_init=DENSE_INIT, name=name)(x)
            return y.reshape(batch, length, self.num_heads, head).transpose(0, 2, 1, 3)

        query, key, value = project("query"), project("key"), project("value")
        logits = query @ key.transpose(0, 1, 3, 2) / jnp.sqrt(float(head))
        weights = jax.nn.softmax(jnp.where(mask, logits, MASKED_LOGIT), axis=-1)
        weights = nn.Dropout(self.attention_dropout)(weights, deterministic=deterministic)
        context = (weights @ value).transpose(0, 2, 1, 3).reshape(batch, length, width)
        out = nn.Dense(width, kernel_init=DENSE_INIT, name="out")(context)
        out = nn.Dropout(self.hidden_dropout)(out, deterministic=deterministic)
        return make_norm(self.norm, self.eps, name="norm")(out + x)


class FeedForward(nn.Module):
    """Dense(inner) -> GELU -> Dense(width) -> dropout, residual and norm (post-norm)."""

    inner: int
    hidden_dropout: float
    norm: str = "layernorm"
    eps: float = 1e-12

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        h = nn.Dense(self.inner, kernel_init=DENSE_INIT, name="dense_in")(x)
        h = nn.Dense(x.shape[-1], kernel_init=DENSE_INIT, name="dense_out")(jax.nn.gelu(h, approximate=False))
        h = nn.Dropout(self.hidden_dropout)(h, deterministic=deterministic)
        return make_norm(self.norm, self.eps, name="norm")(h + x)


class CausalEncoder(nn.Module):
    """`num_layers` of SelfAttention + FeedForward over [B, L, d] inputs under a [B, 1, L, L] mask."""

    num_layers: int
    num_heads: int
    inner: int
    hidden_dropout: float
    attention_dropout: float
    norm: str = "layernorm"
    eps: float = 1e-12

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool) -> jax.Array:
        for layer in range(self.num_layers):
            x = SelfAttention(self.num_heads, self.attention_dropout, self.hidden_dropout, self.norm, self.eps,
                              name=f"attention_{layer}")(x, mask, deterministic)
            x = FeedForward(self.inner, self.hidden_dropout, self.norm, self.eps,
                            name=f"feed_forward_{layer}")(x, deterministic)
        return x
