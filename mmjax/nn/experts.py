"""Mixtures of experts over several node representations: template-structured experts and a pair router.

The K sources (behaviour first, then one per modality) feed E experts. With role templates, expert
(role, anchor) reads a fixed convex mix of the sources: 'dominant' the anchor alone, 'balanced' half the
anchor and half the others, 'complementary' only the others; E = 3K. Without templates (a vanilla
MoE) every expert reads all sources concatenated.

The router scores every expert for a (user, item) pair from the two behaviour vectors through a
bilinear-plus-linear hidden layer, written in low rank so that full ranking (a block of users against
every item) costs a few matrix products per block rather than a per-pair MLP over 3d inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import struct

from mmjax.errors import ConfigError
from mmjax.nn.linear import torch_default_uniform

ROLES = ("dominant", "balanced", "complementary")


def role_templates(num_sources: int) -> np.ndarray:
    """[3K, K] source mix of each expert; expert r * K + m has role ROLES[r] and anchor source m."""
    if num_sources < 2:
        raise ConfigError(f"role templates: expected >= 2 sources (behaviour + a modality), got {num_sources}")
    anchor = np.eye(num_sources)
    others = (1.0 - anchor) / (num_sources - 1)
    return np.concatenate([anchor, 0.5 * anchor + 0.5 * others, others], axis=0).astype(np.float32)


class GraphExperts(nn.Module):
    """[K, n, d] source representations -> [E, n, d]: E residual two-layer GELU MLPs (d -> d -> d).

    `templates` [E, K] (as nested tuples) mixes the sources per expert; None = vanilla MoE with
    `num_experts` experts reading the concatenated sources (residual: the sources' mean).
    """

    templates: tuple[tuple[float, ...], ...] | None
    num_experts: int

    @nn.compact
    def __call__(self, sources: jax.Array) -> jax.Array:
        num_sources, rows, dim = sources.shape
        if self.templates is not None:
            mix = jnp.asarray(self.templates, sources.dtype)
            if mix.shape != (self.num_experts, num_sources):
                raise ConfigError(f"experts: templates {mix.shape} do not match {self.num_experts} experts x "
                                  f"{num_sources} sources")
            inputs = jnp.einsum("ek,knd->end", mix, sources)
            residual = inputs
        else:
            stacked = jnp.transpose(sources, (1, 0, 2)).reshape(rows, num_sources * dim)
            inputs = jnp.broadcast_to(stacked, (self.num_experts, rows, num_sources * dim))
            residual = jnp.broadcast_to(jnp.mean(sources, axis=0), (self.num_experts, rows, dim))
        in_dim = inputs.shape[-1]
        w1 = self.param("hidden_kernel", torch_default_uniform(in_dim), (self.num_experts, in_dim, dim))
        b1 = self.param("hidden_bias", torch_default_uniform(in_dim), (self.num_experts, 1, dim))
        w2 = self.param("out_kernel", torch_default_uniform(dim), (self.num_experts, dim, dim))
        b2 = self.param("out_bias", torch_default_uniform(dim), (self.num_experts, 1, dim))
        hidden = nn.gelu(jnp.einsum("eni,eid->end", inputs, w1) + b1)
        return jnp.einsum("end,edf->enf", hidden, w2) + b2 + residual


@struct.dataclass
class RouterSide:
    """One side's (users' or items') precomputed router inputs: low-rank codes and linear terms."""

    codes: jax.Array  # [..., rank]
    linear: jax.Array  # [..., hidden]


class PairRouter(nn.Module):
    """Expert logits of a (user, item) pair: V tanh(W (A h_u ⊙ A h_i) + B h_u + C h_i + b) + c.

    With rank = d and A = I the first term is the spec's W_a (h_u ⊙ h_i); a smaller rank keeps
    full ranking cheap (cost per user-item pair ~ rank * hidden).
    """

    num_experts: int
    rank: int = 16
    hidden: int = 16

    def setup(self):
        self.codes = nn.Dense(self.rank, use_bias=False, name="codes")
        self.user_linear = nn.Dense(self.hidden, name="user_linear")
        self.item_linear = nn.Dense(self.hidden, use_bias=False, name="item_linear")
        self.interaction = nn.Dense(self.hidden, use_bias=False, name="interaction")
        self.out = nn.Dense(self.num_experts, name="out")

    def user_side(self, users: jax.Array) -> RouterSide:
        return RouterSide(codes=self.codes(users), linear=self.user_linear(users))

    def item_side(self, items: jax.Array) -> RouterSide:
        return RouterSide(codes=self.codes(items), linear=self.item_linear(items))

    def logits(self, user: RouterSide, item: RouterSide) -> jax.Array:
        """[..., E] for broadcastable sides: [n] with [n] (pairs) or [B, 1] with [1, I] (full ranking)."""
        hidden = self.interaction(user.codes * item.codes) + user.linear + item.linear
        return self.out(jnp.tanh(hidden))

    def __call__(self, users: jax.Array, items: jax.Array) -> jax.Array:
        return self.logits(self.user_side(users), self.item_side(items))


def routing_gates(logits: jax.Array, temperature: float, top_k: int, sparse: jax.Array) -> jax.Array:
    """softmax(logits / T) over the last axis; where `sparse`, only the top_k logits (renormalised).

    Ties at the k-th value keep every tied expert. Gradients flow through the kept entries only.
    """
    scaled = logits / temperature
    dense = jax.nn.softmax(scaled, axis=-1)
    if top_k >= logits.shape[-1]:
        return dense
    kth = jnp.sort(scaled, axis=-1)[..., -top_k][..., None]
    kept = jax.nn.softmax(jnp.where(scaled >= kth, scaled, -jnp.inf), axis=-1)
    return jnp.where(sparse, kept, dense)


def normalised_entropy(gates: jax.Array) -> jax.Array:
    """Entropy of each gate vector (last axis) divided by log E, so 1 = uniform and 0 = one expert."""
    num_experts = gates.shape[-1]
    plogp = jnp.where(gates > 0, gates * jnp.log(jnp.where(gates > 0, gates, 1.0)), 0.0)
    return -jnp.sum(plogp, axis=-1) / np.log(num_experts)


def balance_divergence(load: jax.Array) -> jax.Array:
    """KL(load || uniform) = Σ_e load_e log(E load_e) of a mean gate vector (0 when perfectly balanced)."""
    num_experts = load.shape[-1]
    return jnp.sum(jnp.where(load > 0, load * jnp.log(jnp.where(load > 0, num_experts * load, 1.0)), 0.0))
