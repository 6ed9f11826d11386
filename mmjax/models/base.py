"""The contract between a graph top-K model and the trainer, and the scoring and loss pieces models share.

A model file defines its Linen module and a `build(cfg, dataset) -> GraphModel`: the module, the constant
inputs it reads (graphs, features: built once, host side) and how it trains and scores. The trainer
(`train/topk.py`) adds batches, evaluation sets, the optimiser and checkpoints; nothing model-specific.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from mmjax.eval import TopKFn
from mmjax.models.outputs import Embeddings
from mmjax.train.losses import bpr_loss, embedding_norm_penalty
from mmjax.train.schedule import EpochSchedule

Params = Any
Consts = Any
Batch = dict[str, jax.Array]
LossFn = Callable[[Params, Consts, Batch, jax.Array, str | None], tuple[jax.Array, dict[str, jax.Array]]]


def dot_scores(state: tuple[jax.Array, jax.Array], users: jax.Array) -> jax.Array:
    """Scores of every item for a block of users: final user vectors times final item vectors."""
    user_vectors, item_vectors = state
    return user_vectors[users] @ item_vectors.T


def compiled_init(module: nn.Module, *inputs: Any, **static: Any) -> Callable[[jax.Array], Params]:
    """init(rng) -> params of `module.init(rng, *inputs, **static)` as one compiled program, with the inputs
    (graphs, features) as its arguments rather than constants baked into it; XLA drops the forward pass that
    only touches the parameters. Op by op, the init ran that forward pass eagerly: 0.5-1.9 s on tiktok. The
    same parameters, bit for bit, as the op-by-op init (tests/test_models.py; not for VBPR, whose
    xavier-normal draws come out a few ulps apart when XLA fuses them)."""
    initialise = jax.jit(lambda rng, inputs: module.init(rng, *inputs, **static))

    def init(rng: jax.Array) -> Params:
        return initialise(rng, inputs)

    init.op_by_op = lambda rng: module.init(rng, *inputs, **static)  # the uncompiled init, for comparison
    return init


def keep_consts(consts: Consts, rng: jax.Array) -> Consts:
    """The default per-epoch preparation: the constants stay as built."""
    del rng
    return consts


@dataclasses.dataclass(frozen=True)
class GraphModel:
    """A model bound to one dataset.

    init(rng) -> params.
    loss(params, consts, batch, rng, axis_name) -> (scalar, parts): batch has users, positives,
      negatives, weights; reductions over the batch go through losses.batch_sum(..., axis_name).
    score_state(params, consts) -> what score_fn reads (default: final user and item vectors).
    score_fn(state, users) -> [len(users), num_items] scores (default: dot products).
    top_k_fn(state, users, exclude, k) -> (scores, ids) [len(users), k]: score_fn's top k without scoring
      every item (eval/pruning.py), or None to rank score_fn's scores.
    prepare_epoch(consts, rng) -> the constants one epoch trains with (e.g. an edge-dropped graph);
      jittable, run once per epoch inside the compiled epoch.
    inspect(params, consts) -> named per-item/per-user arrays a report plots (e.g. gate values), or None.
    schedule: an EpochSchedule (train/schedule.py) for models whose loss and scoring change with the
      training stage; then loss takes `schedule=` and score_state is (params, consts, schedule).
    route(params, consts, schedule, users, items) -> [n, E] gate weights of mixture-of-experts models
      for (user, item) pairs, named by expert_labels ('role/source'); None otherwise.
    without_experts(params) -> the same params with the expert term switched off, so a report can
      measure how much the experts change the ranking; None when the model cannot drop it.
    """

    init: Callable[[jax.Array], Params]
    loss: LossFn
    score_state: Callable[[Params, Consts], Any]
    consts: Consts
    score_fn: Callable[[Any, jax.Array], jax.Array] = dot_scores
    top_k_fn: TopKFn | None = None
    prepare_epoch: Callable[[Consts, jax.Array], Consts] = keep_consts
    inspect: Callable[[Params, Consts], dict[str, jax.Array]] | None = None
    schedule: EpochSchedule | None = None
    route: Callable[..., jax.Array] | None = None
    expert_labels: tuple[str, ...] = ()
    without_experts: Callable[[Params], Params] | None = None

    def scoring_state(self, params: Params, consts: Consts, schedule: Any = None) -> Any:
        """score_state under the trainer's uniform (params, consts, schedule) signature."""
        if self.schedule is None:
            return self.score_state(params, consts)
        return self.score_state(params, consts, schedule)


def batch_scores(out: Embeddings, batch: Batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(user rows, positive scores, negative scores) of a BPR batch under dot-product scoring."""
    user_vectors = out.users[batch["users"]]
    positive = jnp.sum(user_vectors * out.items[batch["positives"]], axis=-1)
    negative = jnp.sum(user_vectors * out.items[batch["negatives"]], axis=-1)
    return user_vectors, positive, negative


def bpr_with_ego_penalty(out: Embeddings, batch: Batch, reg_weight: float,
                         axis_name: str | None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """BPR on the final vectors + reg_weight * MMRec's EmbLoss on the batch's layer-0 (ego) rows."""
    _, positive, negative = batch_scores(out, batch)
    ranking = bpr_loss(positive, negative, batch["weights"], axis_name)
    reg = embedding_norm_penalty((out.ego_users[batch["users"]], out.ego_items[batch["positives"]],
                                  out.ego_items[batch["negatives"]]), batch["weights"], axis_name)
    return ranking + reg_weight * reg, {"bpr": ranking, "reg": reg}


def embedding_model(module: nn.Module, consts: Consts, reg_weight: float, compile_init: bool = True) -> GraphModel:
    """A GraphModel for a module mapping consts -> Embeddings, trained with bpr_with_ego_penalty.
    compile_init False keeps the op-by-op init, for modules whose compiled init differs (compiled_init)."""

    def loss(params, consts, batch, rng, axis_name=None):
        del rng  # deterministic given the batch
        return bpr_with_ego_penalty(module.apply(params, consts), batch, reg_weight, axis_name)

    def score_state(params, consts):
        out: Embeddings = module.apply(params, consts)
        return out.users, out.items

    init = compiled_init(module, consts) if compile_init else (lambda rng: module.init(rng, consts))
    return GraphModel(init=init, loss=loss, score_state=score_state, consts=consts)


@dataclasses.dataclass(frozen=True)
class SequenceModel:
    """A next-item model bound to one dataset (the sequential protocol, train/sequential.py).

    init(rng) -> params.
    loss(params, consts, batch, rng, axis_name) -> (scalar, parts): batch holds the histories packed into
      rows (data/sequences.py PackedRows: 'tokens', 'segments', 'positions' [R, L], 'last' [B]), 'target'
      int32 [B] (dataset item ids) and 'weights' [B]; reductions over the batch go through
      losses.batch_sum(..., axis_name).
    score_state(params, consts) -> what score_fn reads (e.g. the item table, computed once per pass).
    score_fn(state, query) -> [B, num_items] scores of every item as each query's next one; query holds
      'users' and 'history' [B, L].
    inspect(params, consts, history) -> named per-position / per-item arrays a report plots, or None.
    """

    init: Callable[[jax.Array], Params]
    loss: LossFn
    score_state: Callable[[Params, Consts], Any]
    score_fn: Callable[[Any, Any], jax.Array]
    consts: Consts
    inspect: Callable[..., dict[str, jax.Array]] | None = None

    def scoring_state(self, params: Params, consts: Consts, schedule: Any = None) -> Any:
        """score_state under the trainer's uniform (params, consts, schedule) signature."""
        del schedule
        return self.score_state(params, consts)
