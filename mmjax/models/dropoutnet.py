"""DropoutNet (Volkovs et al., NeurIPS'17) for item cold-start, as ColdRec runs it, trained in one run.

A preference model and two towers train jointly on the same BPR batches:
- Preference model: BPR-MF tables U [n_u, D], V [n_i, D] (Xavier-uniform, as models/bpr.py), trained by
  BPR + reg_weight · EmbLoss (unsquared norms of the batch rows).
- Towers: the user tower maps sg(U_u), the item tower [sg(V_i) or 0 ‖ x_i], through Dense -> norm ->
  tanh per hidden width (model.hidden, default 200, 100) and a last Dense to D. Dense kernels are
  truncated normal (std 0.01, ±2σ), biases 0. x_i is every selected modality L2-normalised per row
  (model.feature_norm) and concatenated in sorted name order; users have no content.
- DropoutNet loss: mean over the batch's (u, i+) and (u, i-) pairs of (f_U(U_u) · f_V(.)_i - sg(U_u · V_i))²,
  with the item preference input zeroed for a random share model.input_dropout of all items each step.
  Total: BPR + reg_weight · EmbLoss + dropoutnet_weight · MSE. sg() keeps the two parts apart: the towers
  never move U and V.
- Scores: f_U(U_u) · f_V([V_i or 0 ‖ x_i]) for every item, warm ones included; a cold item (no train
  interaction) has a zero preference input (model.cold_preference 'zeros'), or its MF row ('mf').

Decisions [our choice]:
- One run instead of ColdRec's two (pretrain BPR-MF, then DropoutNet on the saved tables): MF trains
  beside the towers, which read its current tables through a stop-gradient. The original keeps the
  pretrained vectors fixed, ColdRec fine-tunes them through the MSE; here only BPR moves them.
- Normalisation without running statistics: each step runs both towers over the WHOLE user and item
  tables (inputs as dropout leaves them) and 'batch' norm uses those tables' mean and biased variance,
  eps 1e-3; scoring does the same on the scoring inputs (cold rows zero). Train and test use the same kind
  of statistic and the model keeps no mutable state. The statistics are unweighted over all rows (cold
  items and users without train rows included); they do not follow the batch's degree-weighted sampling.
  A scoring table has fewer zeroed rows (the cold items) than a training one (a share input_dropout);
  normalising it with the expected training statistics instead (every item both fed and dropped) changed
  nothing beyond noise on tiktok, so it is not offered. model.norm 'layer' uses LayerNorm (eps 1e-3) instead.
- Dropout zeroes exactly round(rate · n_items) items' preference inputs, the same items in the positive
  and the negative pairs of a step (ColdRec drops half of each half's rows separately); users are never
  dropped (ColdRec; the original drops users too).
- Cold items' preference input is zero at scoring (the original's choice, and what the dropout trains
  for); ColdRec feeds their MF rows, which BPR trained only as negatives ('mf').
- Cold items take part in training as the batches' negatives when train.negative_pool is 'all_items'
  (the protocol's default, as ColdRec samples): BPR pushes their MF rows down and the MSE fits those rows'
  scores; 'train_items' keeps cold items out of training.
- Targets are each observed pair and its sampled negative (ColdRec), not the original's top-scored and
  random items per user. BPR is the exact -log σ, not ColdRec's -log(1e-5 + σ).
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
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import selected_modalities
from mmjax.models.vbpr import item_content
from mmjax.train.losses import batch_sum, bpr_loss, embedding_norm_penalty

NORMS = ("batch", "layer")
COLD_PREFERENCES = ("zeros", "mf")
NORM_EPS = 1e-3  # the original's and ColdRec's BatchNorm epsilon
dense_init = nn.initializers.truncated_normal(stddev=0.01)  # std of the untruncated normal, cut at ±2σ


class DropoutNetInputs(NamedTuple):
    """What DropoutNet reads, built once."""

    content: jax.Array  # float32 [N, d_c]: the items' normalised modality features side by side
    is_warm: jax.Array  # bool [N]: the item has a train interaction


class DropoutNetOutput(NamedTuple):
    users: jax.Array  # [n_u, D] MF user table U
    items: jax.Array  # [N, D] MF item table V
    user_vectors: jax.Array  # [n_u, D] user tower output
    item_vectors: jax.Array  # [N, D] item tower output


class TableNorm(nn.Module):
    """BatchNorm whose batch is the whole table it is given: (x - mean) / sqrt(var + eps) · γ + β."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        mean = jnp.mean(x, axis=0)
        variance = jnp.mean(jnp.square(x - mean), axis=0)
        return (x - mean) * jax.lax.rsqrt(variance + NORM_EPS) * scale + bias


class Tower(nn.Module):
    """[rows, d_in] -> [rows, out_dim]: (Dense -> norm -> tanh) per hidden width, then Dense."""

    hidden: tuple[int, ...]
    out_dim: int
    norm: str = "batch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=dense_init, bias_init=nn.initializers.zeros)(x)
            x = TableNorm()(x) if self.norm == "batch" else nn.LayerNorm(epsilon=NORM_EPS)(x)
            x = jnp.tanh(x)
        return nn.Dense(self.out_dim, kernel_init=dense_init, bias_init=nn.initializers.zeros)(x)


class DropoutNet(nn.Module):
    """BPR-MF tables and the two towers over them; item_keep [N] (1 or 0) says whose preference is fed."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    hidden: tuple[int, ...] = (200, 100)
    norm: str = "batch"
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, inputs: DropoutNetInputs, item_keep: jax.Array) -> DropoutNetOutput:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        preference = jax.lax.stop_gradient(items) * item_keep[:, None]
        user_vectors = Tower(self.hidden, self.embed_dim, self.norm, name="user_tower")(jax.lax.stop_gradient(users))
        item_vectors = Tower(self.hidden, self.embed_dim, self.norm, name="item_tower")(
            jnp.concatenate([preference, inputs.content], axis=-1))
        return DropoutNetOutput(users=users, items=items, user_vectors=user_vectors, item_vectors=item_vectors)


def dropout_keep(rng: jax.Array, num_items: int, rate: float) -> jax.Array:
    """float32 [N]: 0 for exactly round(rate · N) items drawn uniformly, 1 for the others."""
    dropped = jax.random.permutation(rng, num_items)[: int(round(rate * num_items))]
    return jnp.ones(num_items, jnp.float32).at[dropped].set(0.0)


def scoring_keep(inputs: DropoutNetInputs, cold_preference: str) -> jax.Array:
    """float32 [N]: which items' MF rows the scoring item tower reads (warm only, or all)."""
    if cold_preference == "zeros":
        return inputs.is_warm.astype(jnp.float32)
    return jnp.ones(inputs.is_warm.shape, jnp.float32)


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first DropoutNet field out of range."""
    hidden = cfg.hidden
    if not isinstance(hidden, (tuple, list)) or not all(isinstance(w, int) and w > 0 for w in hidden):
        raise ConfigError(f"model.hidden: expected a tuple of positive layer widths, got {hidden!r}")
    if not 0.0 <= cfg.input_dropout < 1.0:
        raise ConfigError(f"model.input_dropout: expected a rate in [0, 1), got {cfg.input_dropout}")
    if cfg.norm not in NORMS:
        raise ConfigError(f"model.norm: expected one of {NORMS}, got {cfg.norm!r}")
    if cfg.cold_preference not in COLD_PREFERENCES:
        raise ConfigError(f"model.cold_preference: expected one of {COLD_PREFERENCES}, got {cfg.cold_preference!r}")
    if cfg.dropoutnet_weight < 0:
        raise ConfigError(f"model.dropoutnet_weight: expected >= 0, got {cfg.dropoutnet_weight}")


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """DropoutNet on the selected modalities (>= 1, else DataError), scored by the towers' dot products."""
    check_config(cfg)
    embedding_initializer(cfg.init)  # a bad model.init fails here, at build time
    modalities = selected_modalities(cfg, dataset)
    inputs = DropoutNetInputs(content=item_content(dataset, modalities, cfg.get("feature_norm", "l2")),
                              is_warm=jnp.asarray(dataset.item_train_counts() > 0))
    module = DropoutNet(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=int(cfg.embed_dim),
                        hidden=tuple(int(w) for w in cfg.hidden), norm=cfg.norm, embedding_init=cfg.init)
    rate, reg_weight, mse_weight = float(cfg.input_dropout), float(cfg.reg_weight), float(cfg.dropoutnet_weight)
    cold_preference = cfg.cold_preference

    def loss(params, consts, batch, rng, axis_name=None):
        # the same rng on every device: the full-table forward (and its norm statistics) is identical on all
        out = module.apply(params, consts, dropout_keep(rng, dataset.num_items, rate))
        weights = batch["weights"]
        user_rows = out.users[batch["users"]]
        positive, negative = out.items[batch["positives"]], out.items[batch["negatives"]]
        positive_target, negative_target = jnp.sum(user_rows * positive, -1), jnp.sum(user_rows * negative, -1)
        ranking = bpr_loss(positive_target, negative_target, weights, axis_name)
        reg = embedding_norm_penalty((user_rows, positive, negative), weights, axis_name)
        tower_users = out.user_vectors[batch["users"]]
        errors = sum(jnp.square(jnp.sum(tower_users * out.item_vectors[batch[key]], -1) - jax.lax.stop_gradient(t))
                     for key, t in (("positives", positive_target), ("negatives", negative_target)))
        mse = batch_sum(errors * weights, axis_name) / jnp.maximum(2.0 * batch_sum(weights, axis_name), 1.0)
        return ranking + reg_weight * reg + mse_weight * mse, {"bpr": ranking, "reg": reg, "mse": mse}

    def score_state(params, consts):
        out = module.apply(params, consts, scoring_keep(consts, cold_preference))
        return out.user_vectors, out.item_vectors

    init_keep = np.ones(dataset.num_items, np.float32)
    return GraphModel(init=compiled_init(module, inputs, init_keep), loss=loss,
                      score_state=score_state, consts=inputs, score_fn=dot_scores)
