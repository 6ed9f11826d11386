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

import functools
from typing import Sequence

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
    """[K, n, d] source representations -> [E, n, out]: E experts applied to every node row.

    `templates` [E, K] (as nested tuples) mixes the sources per expert; None = vanilla MoE with
    `num_experts` experts reading the concatenated sources. With `mlp` an expert is a residual two-layer
    GELU MLP (in -> d -> out) over its input (residual: the input mix, or the sources' mean for vanilla
    experts); without, a linear expert: the template's input mix itself, or for vanilla experts a learned
    linear map of the concatenated sources. `out_dim` (None: d) below d makes each expert's dot product
    cheaper in full ranking; the residual is then a learned d -> out projection, one per expert or one
    shared by all (`shared_projection`).
    """

    templates: tuple[tuple[float, ...], ...] | None
    num_experts: int
    out_dim: int | None = None
    mlp: bool = True
    shared_projection: bool = False

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
        in_dim, out_dim = inputs.shape[-1], self.out_dim or dim
        if not self.mlp and self.templates is None:
            kernel = self.param("mix_kernel", torch_default_uniform(in_dim), (self.num_experts, in_dim, out_dim))
            return jnp.einsum("eni,eif->enf", inputs, kernel)
        if out_dim != dim:
            experts = 1 if self.shared_projection else self.num_experts
            projection = self.param("residual_kernel", torch_default_uniform(dim), (experts, dim, out_dim))
            residual = jnp.einsum("end,edf->enf", residual,
                                  jnp.broadcast_to(projection, (self.num_experts, dim, out_dim)))
        if not self.mlp:
            return residual
        w1 = self.param("hidden_kernel", torch_default_uniform(in_dim), (self.num_experts, in_dim, dim))
        b1 = self.param("hidden_bias", torch_default_uniform(in_dim), (self.num_experts, 1, dim))
        w2 = self.param("out_kernel", torch_default_uniform(dim), (self.num_experts, dim, out_dim))
        b2 = self.param("out_bias", torch_default_uniform(dim), (self.num_experts, 1, out_dim))
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
    full ranking cheap (per user-item pair ~ rank * hidden + hidden * E multiply-adds, all in GEMMs).
    """

    num_experts: int
    input_dim: int
    rank: int = 16
    hidden: int = 16

    def setup(self):
        init, zeros = nn.initializers.lecun_normal(), nn.initializers.zeros
        self.codes_kernel = self.param("codes_kernel", init, (self.input_dim, self.rank))
        self.user_kernel = self.param("user_kernel", init, (self.input_dim, self.hidden))
        self.item_kernel = self.param("item_kernel", init, (self.input_dim, self.hidden))
        self.hidden_bias = self.param("hidden_bias", zeros, (self.hidden,))
        self.interaction_kernel = self.param("interaction_kernel", init, (self.rank, self.hidden))
        self.out_kernel = self.param("out_kernel", init, (self.hidden, self.num_experts))
        self.out_bias = self.param("out_bias", zeros, (self.num_experts,))

    def user_side(self, users: jax.Array) -> RouterSide:
        return RouterSide(codes=users @ self.codes_kernel, linear=users @ self.user_kernel + self.hidden_bias)

    def item_side(self, items: jax.Array) -> RouterSide:
        return RouterSide(codes=items @ self.codes_kernel, linear=items @ self.item_kernel)

    def pair_logits(self, user: RouterSide, item: RouterSide) -> jax.Array:
        """[n, E] for n aligned (user, item) rows."""
        hidden = (user.codes * item.codes) @ self.interaction_kernel + user.linear + item.linear
        return jnp.tanh(hidden) @ self.out_kernel + self.out_bias

    def block_logits(self, user: RouterSide, item: RouterSide) -> list[jax.Array]:
        """E arrays [B, I]: every one of B users with every one of I items. All hidden units come from
        one [hidden * B, rank] x [rank, I] GEMM of the kernel-scaled user codes with the item codes, so
        no [B, I, rank] product is formed (one GEMM ranks tiktok ~10 % faster than one per unit);
        experts stay separate arrays (XLA on CPU reduces a small leading axis far slower than it adds
        arrays)."""
        rows = user.codes.shape[0]
        scaled = (self.interaction_kernel.T[:, None, :] * user.codes[None]).reshape(self.hidden * rows, self.rank)
        products = (scaled @ item.codes.T).reshape(self.hidden, rows, -1)
        hidden = [jnp.tanh(products[j] + user.linear[:, j:j + 1] + item.linear[:, j][None])
                  for j in range(self.hidden)]
        return [sum(self.out_kernel[j, e] * unit for j, unit in enumerate(hidden)) + self.out_bias[e]
                for e in range(self.num_experts)]


def shifted_exps(logits: Sequence[jax.Array]) -> list[jax.Array]:
    """exp(ℓ_e - max_e ℓ_e) per expert: the softmax's unnormalised weights, at most 1."""
    top = functools.reduce(jnp.maximum, logits)
    return [jnp.exp(value - top) for value in logits]


def softmax_experts(logits: Sequence[jax.Array]) -> list[jax.Array]:
    """Softmax across a list of per-expert arrays (elementwise)."""
    exps = shifted_exps(logits)
    total = sum(exps)
    return [value / total for value in exps]


def top_k_mask(logits: Sequence[jax.Array], k: int) -> list[jax.Array]:
    """Per-expert booleans: the expert is among the k largest logits (ties go to the lower index)."""
    masks = []
    for e, value in enumerate(logits):
        rank = sum((other > value) if j > e else (other >= value) for j, other in enumerate(logits) if j != e)
        masks.append(rank < k)
    return masks


def routing_gates(logits: Sequence[jax.Array], temperature: float, top_k: int,
                  sparse: bool | jax.Array) -> list[jax.Array]:
    """softmax(logits / T) across the experts; where `sparse`, over the top_k logits only (the others 0).

    `logits` is one array per expert. `sparse` a Python bool computes one mode only; an array selects
    per call (both computed). Gradients flow through the kept entries only.
    """
    scaled = [value / temperature for value in logits]
    dense = softmax_experts(scaled)
    if sparse is False or top_k >= len(logits):
        return dense
    kept = softmax_experts([jnp.where(keep, value, -jnp.inf)
                            for keep, value in zip(top_k_mask(scaled, top_k), scaled)])
    if sparse is True:
        return kept
    return [jnp.where(sparse, k, d) for k, d in zip(kept, dense)]


def gated_mixture(logits: Sequence[jax.Array], values: Sequence[jax.Array], temperature: float, top_k: int,
                  sparse: bool | jax.Array) -> jax.Array:
    """Σ_e g_e v_e for the gates g of routing_gates(logits, temperature, top_k, sparse), without forming g.

    Σ_e exp(ℓ_e - m) v_e / Σ_e exp(ℓ_e - m) (m the largest logit, always kept) costs one division per
    entry rather than one per expert; full ranking spends most of its time on such per-pair arithmetic.
    """
    scaled = [value / temperature for value in logits]
    exps = shifted_exps(scaled)

    def mixed(weights: list[jax.Array]) -> jax.Array:
        return sum(w * v for w, v in zip(weights, values)) / sum(weights)

    dense = None if sparse is True else mixed(exps)
    if sparse is False or top_k >= len(logits):
        return dense
    kept = mixed([jnp.where(keep, e, 0.0) for keep, e in zip(top_k_mask(scaled, top_k), exps)])
    return kept if sparse is True else jnp.where(sparse, kept, dense)


def normalised_entropy(gates: jax.Array) -> jax.Array:
    """Entropy of each gate vector (last axis) divided by log E, so 1 = uniform and 0 = one expert."""
    num_experts = gates.shape[-1]
    plogp = jnp.where(gates > 0, gates * jnp.log(jnp.where(gates > 0, gates, 1.0)), 0.0)
    return -jnp.sum(plogp, axis=-1) / np.log(num_experts)


def balance_divergence(load: jax.Array) -> jax.Array:
    """KL(load || uniform) = Σ_e load_e log(E load_e) of a mean gate vector (0 when perfectly balanced)."""
    num_experts = load.shape[-1]
    return jnp.sum(jnp.where(load > 0, load * jnp.log(jnp.where(load > 0, num_experts * load, 1.0)), 0.0))
