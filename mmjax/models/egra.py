"""EGRA (Zhang et al., arXiv 2508.16170): MGCN trained over a behaviour graph enhanced by a pretrained model's
item-item graph, with a bi-level dynamic weight on its modality-behaviour alignment (specs/egra.md).

Phase 1 is any graph model's finished run; its best-valid item vectors Ĥ arrive as an input
(dataset.pretrained_items, attached by train/pretrained.py from model.pretrained_workdir). Phase 2, here:
- S_pre: each item's model.pretrained_k most cosine-similar items under Ĥ, itself excluded, weights the
  cosines clipped at 0, symmetrised by max(S, Sᵀ) (model.item_graph_symmetrise) [our choice].
- Behaviour graph A_enh = [[0, R], [Rᵀ, β·S_pre]] (β = model.item_graph_weight), symmetrically normalised
  as one graph; MGCN's behaviour view (LightGCN, n_ui_layers) propagates over it. The modality views,
  their lift to users by R̂ of the train graph, the common/specific split and the scores are MGCN's.
- Alignment, per entity set (the batch's users; its positive items), τ = cl_temperature:
    ℓ_n = InfoNCE(side_n, behaviour_n);  a_n = sg(cos(side_n, behaviour_n)) (the alignment degree);
    w_n = clip(B · softmax_n(s · a_n / T_w), w_lo, w_hi)  over the global batch set, mean 1 before clipping,
    s = -1 ('poorly_aligned': entities aligned worst get the most pressure, the spec's default) or +1
    ('well_aligned'); 'uniform' is w_n = 1;
    L_align = λ(t) · (mean_users w_n ℓ_n + mean_items w_n ℓ_n),
    λ(t) = λ_max · (r0 + (1 - r0) · min(1, t / T_ramp)), t the training step in epochs (fractional),
    λ_max = cl_loss, r0 = strength_start, T_ramp = strength_ramp_epochs (0: λ = λ_max throughout).
- Loss: BPR + reg_weight · ½‖final batch rows‖² / B (MGCN's) + L_align.

λ(t) is an EpochSchedule (train/schedule.py) read per step from the TrainState's step count, so it is
checkpointed and a resumed run continues on the same curve; the entity weights are a function of the
parameters, recomputed each step. Each epoch logs λ (its mean over the epoch's steps), the mean alignment
degree, and the batch weights' spread, range and 10/50/90 % quantiles (means over the epoch's steps);
`python -m mmjax.report` draws them (alignment.png) with the weights of every user and item at the best epoch.
model.item_graph: 'pretrained' (S_pre), 'features' (the raw features' kNN graph mixed as FREEDOM does,
0.1 image / 0.9 the rest: the spec's ablation 2) or 'none' (the plain train graph: MGCN + dynamic alignment).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError, check_fields
from mmjax.graph import content_augmented_graph, knn_cosine_edges
from mmjax.models.base import Batch, GraphModel, batch_scores, compiled_init
from mmjax.models.inputs import content_edges, selected_modalities
from mmjax.models.mgcn import MGCNOutput, batch_rows_output, mgcn_parts
from mmjax.train.losses import batch_sum, bpr_loss, info_nce, l2_normalize, squared_norm_penalty
from mmjax.train.schedule import EpochSchedule, Schedule

ITEM_GRAPHS = ("pretrained", "features", "none")
ENTITY_WEIGHTINGS = ("poorly_aligned", "well_aligned", "uniform")
SYMMETRISE = ("max", "mean")
FEATURE_GRAPH_IMAGE_WEIGHT = 0.1  # FREEDOM's mix of the raw-feature graphs, for the 'features' ablation


def pretrained_item_edges(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(receivers, senders, weights): each item's k most cosine-similar other items under `vectors`, the
    cosines clipped at 0 (ties prefer the lower item id, as every kNN graph of the library)."""
    num_items = len(vectors)
    if not 1 <= k < num_items:
        raise ConfigError(f"model.pretrained_k: expected 1 <= k < {num_items} items, got {k}")
    receivers, senders, cosines = knn_cosine_edges(vectors, k + 1)
    senders, cosines = senders.reshape(num_items, k + 1), cosines.reshape(num_items, k + 1)
    keep = senders != np.arange(num_items)[:, None]
    keep &= np.cumsum(keep, axis=1) <= k  # the k best of the others, whether or not the item itself was listed
    rows = np.broadcast_to(np.arange(num_items)[:, None], senders.shape)
    return rows[keep].astype(np.int32), senders[keep].astype(np.int32), np.maximum(cosines[keep], 0.0)


def enhanced_behaviour_graph(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> Any:
    """A_enh over U + I nodes for model.item_graph, or None for 'none' (MGCN's plain train graph)."""
    if cfg.item_graph == "none":
        return None
    if cfg.item_graph == "pretrained":
        if dataset.pretrained_items is None:
            raise ConfigError("model.pretrained_workdir: EGRA's item graph comes from a finished phase-1 run "
                              "(e.g. an MGCN workdir); none given")
        edges = pretrained_item_edges(dataset.pretrained_items.vectors, int(cfg.pretrained_k))
    else:
        edges = content_edges(dataset, selected_modalities(cfg, dataset), int(cfg.knn_k),
                              FEATURE_GRAPH_IMAGE_WEIGHT)
    return content_augmented_graph(dataset.train, dataset.num_users, dataset.num_items, edges,
                                   float(cfg.item_graph_weight), str(cfg.item_graph_symmetrise))


@dataclasses.dataclass(frozen=True)
class AlignmentStrength:
    """λ(t) = maximum · (start + (1 - start) · min(1, t / ramp_epochs)), t in epochs; ramp 0: λ = maximum."""

    maximum: float
    start: float = 0.1
    ramp_epochs: float = 50.0

    def at(self, epochs: jnp.ndarray) -> jnp.ndarray:
        if self.ramp_epochs == 0:
            return jnp.asarray(self.maximum, jnp.float32)
        progress = jnp.minimum(1.0, jnp.asarray(epochs, jnp.float32) / self.ramp_epochs)
        return (self.maximum * (self.start + (1.0 - self.start) * progress)).astype(jnp.float32)

    def init(self) -> Schedule:
        return {"epoch": jnp.zeros((), jnp.int32), "strength": self.at(0.0)}

    def update(self, schedule: Schedule, parts: dict[str, jnp.ndarray]) -> Schedule:
        del parts
        epoch = schedule["epoch"] + 1
        return {"epoch": epoch.astype(jnp.int32), "strength": self.at(epoch)}

    def at_step(self, schedule: Schedule, step: jnp.ndarray, steps_per_epoch: int) -> Schedule:
        return {**schedule, "strength": self.at(step.astype(jnp.float32) / steps_per_epoch)}

    def as_epoch_schedule(self) -> EpochSchedule:
        return EpochSchedule(init=self.init, update=self.update, holds_early_stop=lambda host: False,
                             at_step=self.at_step)


@dataclasses.dataclass(frozen=True)
class EntityWeighting:
    """The entity-level weights w_n of one batch set from its alignment degrees (see the module doc)."""

    mode: str = "poorly_aligned"
    temperature: float = 0.5
    low: float = 0.1
    high: float = 5.0

    def degrees(self, side: jax.Array, behaviour: jax.Array) -> jax.Array:
        """a_n = cos(side_n, behaviour_n), without gradient."""
        return jax.lax.stop_gradient(jnp.sum(l2_normalize(side) * l2_normalize(behaviour), axis=-1))

    def weights(self, degrees: jax.Array, batch_weights: jax.Array, axis_name: str | None) -> jax.Array:
        """w_n over the global batch's real rows (batch_weights > 0); 1 for 'uniform'."""
        if self.mode == "uniform":
            return jnp.ones_like(degrees)
        sign = -1.0 if self.mode == "poorly_aligned" else 1.0
        exp = jnp.exp(sign * degrees / self.temperature - 1.0 / self.temperature)  # exponent <= 0: no overflow
        mean = batch_sum(exp * batch_weights, axis_name) / jnp.maximum(batch_sum(batch_weights, axis_name), 1.0)
        return jnp.clip(exp / mean, self.low, self.high)


def egra_loss(out: MGCNOutput, batch: Batch, reg_weight: float, temperature: float, weighting: EntityWeighting,
              strength: jax.Array, axis_name: str | None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """BPR + reg_weight · squared_norm_penalty(final rows) + strength · (weighted InfoNCE of items + users)."""
    user_vectors, positive, negative = batch_scores(out, batch)
    weights = batch["weights"]
    ranking = bpr_loss(positive, negative, weights, axis_name)
    reg = squared_norm_penalty((user_vectors, out.items[batch["positives"]], out.items[batch["negatives"]]),
                               weights, axis_name)
    align, degree_sum, entity_weights = 0.0, 0.0, []
    for side, behaviour in ((out.side_items[batch["positives"]], out.content_items[batch["positives"]]),
                            (out.side_users[batch["users"]], out.content_users[batch["users"]])):
        degrees = weighting.degrees(side, behaviour)
        scale = weighting.weights(degrees, weights, axis_name)
        align = align + info_nce(side, behaviour, weights, temperature, axis_name, row_scale=scale)
        degree_sum = degree_sum + batch_sum(degrees * weights, axis_name)
        entity_weights.append(scale)
    real = jnp.maximum(batch_sum(weights, axis_name), 1.0)
    scale = jnp.concatenate(entity_weights)
    both = jnp.concatenate([weights, weights])
    mean_w = batch_sum(scale * both, axis_name) / (2.0 * real)
    spread = jnp.sqrt(batch_sum(jnp.square(scale - mean_w) * both, axis_name) / (2.0 * real))
    largest, smallest = jnp.max(jnp.where(both > 0, scale, 0.0)), jnp.min(jnp.where(both > 0, scale, jnp.inf))
    if axis_name is not None:
        largest, smallest = jax.lax.pmax(largest, axis_name), jax.lax.pmin(smallest, axis_name)
    # Quantiles of this device's batch weights (averaged over devices with the other parts)
    q10, q50, q90 = jnp.nanquantile(jnp.where(both > 0, scale, jnp.nan), jnp.asarray([0.1, 0.5, 0.9]))
    parts = {"bpr": ranking, "reg": reg, "align": align, "strength": strength,
             "alignment_degree": degree_sum / (2.0 * real), "weight_std": spread,
             "weight_max": largest, "weight_min": smallest, "weight_q10": q10, "weight_q50": q50, "weight_q90": q90}
    return ranking + reg_weight * reg + strength * align, parts


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first out-of-range EGRA field (MGCN's are checked by mgcn_parts)."""
    clip = tuple(cfg.entity_weight_clip) if isinstance(cfg.entity_weight_clip, (tuple, list)) else ()
    if len(clip) != 2:
        raise ConfigError(f"model.entity_weight_clip: expected (low, high), got {cfg.entity_weight_clip!r}")
    low, high = (float(v) for v in clip)
    check_fields([
        ("model.item_graph", cfg.item_graph, cfg.item_graph in ITEM_GRAPHS, f"one of {ITEM_GRAPHS}"),
        ("model.item_graph_weight", cfg.item_graph_weight, cfg.item_graph_weight > 0, "> 0"),
        ("model.item_graph_symmetrise", cfg.item_graph_symmetrise, cfg.item_graph_symmetrise in SYMMETRISE,
         f"one of {SYMMETRISE}"),
        ("model.entity_weighting", cfg.entity_weighting, cfg.entity_weighting in ENTITY_WEIGHTINGS,
         f"one of {ENTITY_WEIGHTINGS}"),
        ("model.entity_weight_temperature", cfg.entity_weight_temperature, cfg.entity_weight_temperature > 0, "> 0"),
        ("model.entity_weight_clip", tuple(cfg.entity_weight_clip), 0 < low <= 1 <= high,
         "(low, high) with 0 < low <= 1 <= high"),
        ("model.strength_start", cfg.strength_start, 0 <= cfg.strength_start <= 1, "in [0, 1]"),
        ("model.strength_ramp_epochs", cfg.strength_ramp_epochs, cfg.strength_ramp_epochs >= 0, ">= 0"),
    ])


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """EGRA on `dataset` (its pretrained_items for the 'pretrained' item graph)."""
    check_config(cfg)
    module, consts, init_consts = mgcn_parts(cfg, dataset, enhanced_behaviour_graph(cfg, dataset))
    strength = AlignmentStrength(maximum=float(cfg.cl_loss), start=float(cfg.strength_start),
                                 ramp_epochs=float(cfg.strength_ramp_epochs))
    low, high = (float(v) for v in cfg.entity_weight_clip)
    weighting = EntityWeighting(mode=str(cfg.entity_weighting), temperature=float(cfg.entity_weight_temperature),
                                low=low, high=high)
    reg_weight, temperature = float(cfg.reg_weight), float(cfg.cl_temperature)

    def loss(params, consts, batch, rng, axis_name=None, schedule=None):
        del rng  # deterministic given the batch
        out, rows_batch = batch_rows_output(module, params, consts, batch)  # the batch's rows, as MGCN's step
        return egra_loss(out, rows_batch, reg_weight, temperature, weighting, schedule["strength"], axis_name)

    def score_state(params, consts, schedule=None):
        del schedule  # scoring does not depend on the alignment strength
        out: MGCNOutput = module.apply(params, consts)
        return out.users, out.items

    def inspect(params, consts):
        """Every user's and item's alignment degree and the weight it would get in a batch of all of them."""
        out: MGCNOutput = module.apply(params, consts)
        arrays = {}
        for kind, side, behaviour in (("item", out.side_items, out.content_items),
                                      ("user", out.side_users, out.content_users)):
            degrees = weighting.degrees(side, behaviour)
            arrays[f"{kind}_alignment_degree"] = degrees
            arrays[f"{kind}_alignment_weight"] = weighting.weights(degrees, jnp.ones_like(degrees), None)
        return arrays

    return GraphModel(init=compiled_init(module, init_consts), loss=loss, score_state=score_state,
                      consts=consts, schedule=strength.as_epoch_schedule(), inspect=inspect)
