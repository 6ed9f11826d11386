"""MAMEX (specs/mamex.md): item cold-start by a sparse mixture of experts per modality and a modality gate.

Items have no ID embedding: every item, warm or cold, is encoded from its L2-normalised content. Each
modality m goes through its own sparse MoE: E affine experts h_e = x W_e + b_e, a router z = x G + c, the
top-k experts by z mixed with softmax over their logits. A gate MLP (M·D -> D, ReLU, dropout, D -> M)
over the concatenated modality embeddings gives softmax weights w, and the item is q = Σ_m w_m e^m.
Users have free vectors P (normal, std 0.1); s(u, i) = P_u · q_i.

Loss: BPR + reg · mean_B(|P_u|² + |q_i+|² + |q_i-|²) + align · Σ_m MSE(q, e^m) + moe_balance · Σ_m
KL(uniform || mean_i softmax(z^m)) + fusion_balance · KL(uniform || mean_i w), the last three over the
whole item table (cold items included, as the reference code does; model.inductive restricts them to warm
items). Missing modalities (dataset.missing_features): with model.missing 'masked' a missing modality's
gate logit is -1e9, so q is the present modalities' mix, and its rows leave that modality's alignment and
balance terms; 'zero_fill' feeds the zero rows like any others.

Ablations: num_experts 1 (one linear map per modality), top_k = num_experts (dense routing), fusion 'mean'
(no gate, no fusion balance), the loss weights at 0, model.modalities with one modality.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError
from mmjax.models.base import GraphModel, dot_scores, compiled_init
from mmjax.models.inputs import modality_features, selected_modalities
from mmjax.nn.linear import TorchLinear, torch_default_uniform
from mmjax.train.losses import batch_sum, bpr_loss

FUSIONS = ("gate", "mean")
MISSING_MODES = ("masked", "zero_fill")
MASKED_LOGIT = -1e9


class MamexInputs(NamedTuple):
    """What MAMEX reads, built once: each modality's L2-normalised features and where they count."""

    features: tuple[jax.Array, ...]  # [N, d_m] per modality, in model order
    present: jax.Array  # bool [N, M]: the item has this modality (all True without missing features)
    counted: jax.Array  # float32 [N]: 1 for items in the full-table losses (all, or warm items when inductive)


class MamexOutput(NamedTuple):
    items: jax.Array  # [N, D] fused item embeddings q
    modality: jax.Array  # [M, N, D] modality embeddings e^m
    router_probs: jax.Array  # [M, N, E] dense softmax of each modality's router
    expert_weights: jax.Array  # [M, N, E] the sparse mix each item uses (0 outside its top k)
    gate: jax.Array  # [N, M] modality weights w


def top_k_mask(logits: jax.Array, k: int) -> jax.Array:
    """bool [N, E]: each row's k largest logits, ties to the lower index (lax.top_k's choice), found by
    counting the logits ranked before each one: E² comparisons, cheaper than a sort for a few experts."""
    index = jnp.arange(logits.shape[-1])
    before = (logits[:, None, :] > logits[:, :, None]) | \
        ((logits[:, None, :] == logits[:, :, None]) & (index[None, None, :] < index[None, :, None]))
    return before.sum(axis=-1) < k


class SparseExperts(nn.Module):
    """[N, d] -> ([N, D] top-k mix of E affine experts, [N, E] dense router softmax, [N, E] sparse weights)."""

    num_experts: int
    top_k: int
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        init = torch_default_uniform(x.shape[-1])
        kernels = self.param("expert_kernels", init, (self.num_experts, x.shape[-1], self.out_dim))
        biases = self.param("expert_biases", init, (self.num_experts, self.out_dim))
        # every expert, densely, as one [d, E·D] product (a batched einsum is slower on CPU): [N, E, D]
        flat_kernel = jnp.transpose(kernels, (1, 0, 2)).reshape(x.shape[-1], -1)
        outputs = (x @ flat_kernel).reshape(x.shape[0], self.num_experts, self.out_dim) + biases
        logits = TorchLinear(self.num_experts, name="router")(x)
        sparse = jax.nn.softmax(jnp.where(top_k_mask(logits, self.top_k), logits, -jnp.inf), axis=-1)
        mixed = jnp.einsum("ne,ned->nd", sparse, outputs)  # the gradient reaches the router through the top k
        return mixed, jax.nn.softmax(logits, axis=-1), sparse


class MAMEX(nn.Module):
    """Content-only item encoder (one SparseExperts per modality + gate) and a free user table."""

    num_users: int
    embed_dim: int = 128
    num_experts: int = 4
    top_k: int = 2
    fusion: str = "gate"
    fusion_dropout: float = 0.1
    masked: bool = True

    @nn.compact
    def __call__(self, inputs: MamexInputs, deterministic: bool = True) -> tuple[jax.Array, MamexOutput]:
        users = self.param("user_embedding", nn.initializers.normal(0.1), (self.num_users, self.embed_dim))
        mixed, probs, sparse = zip(*(SparseExperts(self.num_experts, self.top_k, self.embed_dim,
                                                   name=f"experts_{m}")(x) for m, x in enumerate(inputs.features)))
        modality = jnp.stack(mixed)  # [M, N, D]
        present = inputs.present if self.masked else jnp.ones_like(inputs.present)
        if self.fusion == "gate" and len(inputs.features) > 1:
            hidden = nn.relu(TorchLinear(self.embed_dim, name="gate_hidden")(jnp.concatenate(mixed, axis=-1)))
            hidden = nn.Dropout(self.fusion_dropout)(hidden, deterministic=deterministic)
            logits = TorchLinear(len(inputs.features), name="gate_out")(hidden)
            gate = jax.nn.softmax(jnp.where(present, logits, MASKED_LOGIT), axis=-1)
        else:  # the mean of the present modalities
            gate = present / jnp.maximum(present.sum(axis=-1, keepdims=True), 1)
        items = jnp.einsum("nm,mnd->nd", gate, modality)
        return users, MamexOutput(items=items, modality=modality, router_probs=jnp.stack(probs),
                                  expert_weights=jnp.stack(sparse), gate=gate)


def uniform_kl(mean_probs: jax.Array) -> jax.Array:
    """KL(uniform || p) over the last axis: Σ_e u (log u - log p), p clamped at 1e-12."""
    size = mean_probs.shape[-1]
    return jnp.sum((1.0 / size) * (jnp.log(1.0 / size) - jnp.log(jnp.maximum(mean_probs, 1e-12))), axis=-1)


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean over axis 0 of values [N, ...] with row weights [N]."""
    shaped = weights.reshape(weights.shape + (1,) * (values.ndim - 1))
    return jnp.sum(values * shaped, axis=0) / jnp.maximum(jnp.sum(weights), 1.0)


def table_losses(out: MamexOutput, inputs: MamexInputs, masked: bool, gated: bool) -> dict[str, jax.Array]:
    """The full-table terms: alignment (Σ_m MSE(q, e^m)), MoE balance and fusion balance."""
    counted = inputs.counted
    rows = [counted * (inputs.present[:, m] if masked else 1.0) for m in range(out.modality.shape[0])]
    align = sum(weighted_mean(jnp.mean(jnp.square(out.items - out.modality[m]), axis=-1), rows[m])
                for m in range(len(rows)))
    moe = sum(uniform_kl(weighted_mean(out.router_probs[m], rows[m])) for m in range(len(rows)))
    fusion = uniform_kl(weighted_mean(out.gate, counted)) if gated else jnp.zeros(())
    return {"align": align, "moe_balance": moe, "fusion_balance": fusion}


def mamex_inputs(cfg: ml_collections.ConfigDict, dataset: InteractionDataset,
                 modalities: tuple[str, ...]) -> MamexInputs:
    """Each modality's rows L2-normalised (a zero row stays zero), the presence mask and the loss rows."""
    features = modality_features(dataset, modalities, "l2")
    present = np.stack([~np.asarray(dataset.missing_features.get(m, np.zeros(dataset.num_items, bool)))
                        for m in modalities], axis=1)
    counted = dataset.item_train_counts() > 0 if cfg.get("inductive", False) else np.ones(dataset.num_items, bool)
    return MamexInputs(features=tuple(features[m] for m in modalities), present=jnp.asarray(present),
                       counted=jnp.asarray(counted, jnp.float32))


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first MAMEX field out of range."""
    if cfg.num_experts < 1 or not 1 <= cfg.top_k <= cfg.num_experts:
        raise ConfigError(f"model.top_k: expected 1 <= top_k <= num_experts ({cfg.num_experts}), got {cfg.top_k}")
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"model.fusion: expected one of {FUSIONS}, got {cfg.fusion!r}")
    if cfg.missing not in MISSING_MODES:
        raise ConfigError(f"model.missing: expected one of {MISSING_MODES}, got {cfg.missing!r}")
    if not 0.0 <= cfg.fusion_dropout < 1.0:
        raise ConfigError(f"model.fusion_dropout: expected a rate in [0, 1), got {cfg.fusion_dropout}")
    for field in ("align_weight", "moe_balance_weight", "fusion_balance_weight"):
        if cfg[field] < 0:
            raise ConfigError(f"model.{field}: expected >= 0, got {cfg[field]}")


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """MAMEX on the selected modalities (>= 1, else DataError), scored by P_u · q_i."""
    check_config(cfg)
    modalities = selected_modalities(cfg, dataset)
    masked = cfg.missing == "masked"
    gated = cfg.fusion == "gate" and len(modalities) > 1
    module = MAMEX(num_users=dataset.num_users, embed_dim=int(cfg.embed_dim), num_experts=int(cfg.num_experts),
                   top_k=int(cfg.top_k), fusion=cfg.fusion, fusion_dropout=float(cfg.fusion_dropout), masked=masked)
    inputs = mamex_inputs(cfg, dataset, modalities)
    weights = {"align": float(cfg.align_weight), "moe_balance": float(cfg.moe_balance_weight),
               "fusion_balance": float(cfg.fusion_balance_weight)}
    reg_weight = float(cfg.reg_weight)

    def loss(params, consts, batch, rng, axis_name=None):
        users, out = module.apply(params, consts, deterministic=False, rngs={"dropout": rng})
        user_rows = users[batch["users"]]
        positive, negative = out.items[batch["positives"]], out.items[batch["negatives"]]
        ranking = bpr_loss(jnp.sum(user_rows * positive, -1), jnp.sum(user_rows * negative, -1), batch["weights"],
                           axis_name)
        squares = sum(jnp.sum(jnp.square(t), axis=-1) for t in (user_rows, positive, negative))
        reg = batch_sum(squares * batch["weights"], axis_name) / jnp.maximum(batch_sum(batch["weights"], axis_name), 1.0)
        parts = {"bpr": ranking, "reg": reg, **table_losses(out, consts, masked, gated)}
        total = ranking + reg_weight * reg + sum(weights[name] * parts[name] for name in weights)
        return total, parts

    def score_state(params, consts):
        users, out = module.apply(params, consts)
        return users, out.items

    def inspect(params, consts):
        """Per item: each modality's gate weight ('gate/<m>' [N]) and expert mix ('experts/<m>' [N, E])."""
        _, out = module.apply(params, consts)
        return {**{f"gate/{name}": out.gate[:, m] for m, name in enumerate(modalities)},
                **{f"experts/{name}": out.expert_weights[m] for m, name in enumerate(modalities)}}

    return GraphModel(init=compiled_init(module, inputs), loss=loss, score_state=score_state,
                      consts=inputs, score_fn=dot_scores, inspect=inspect)
