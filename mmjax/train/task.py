"""The seam between a protocol (graph top-K, sequential, cold-start) and the shared trainer.

A protocol supplies batches, a loss, a scorer and its evaluation views; the trainer owns the optimiser,
the pmapped epoch, evaluation, early stopping, checkpoints and reporting, so no protocol copies the loop.
A protocol is one function (config, dataset) -> Task registered in train/train.py's PROTOCOLS.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np

from mmjax.errors import ConfigError
from mmjax.eval import EvalSet, ScoreFn, TopKFn
from mmjax.train.schedule import EpochSchedule

Params = Any
Consts = Any  # pytree of device arrays the model reads but never trains (graphs, features)
Batch = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything protocol-specific that the trainer needs.

    init_params(rng) -> params.
    loss_fn(params, consts, batch, rng, axis_name) -> (scalar loss, dict of scalar parts); pure, jittable.
      Under data parallelism `batch` is one device's shard and `axis_name` the device axis: batch
      reductions go through losses.batch_sum(..., axis_name) so the loss is the global batch's.
    epoch_batches(epoch) -> dict of numpy arrays stacked [steps, batch, ...]; deterministic in
      (seed, epoch) so that a resumed run sees the batches an uninterrupted one would.
    score_state(params, consts, schedule) -> pytree that score_fn reads (e.g. final embeddings); jittable;
      `schedule` is the run's epoch schedule (None without one), as scoring may depend on its stage.
    score_fn(state, query) -> scores [len(query['users']), num_items]: query holds 'users' and the view's
      per-query inputs (eval.EvalSet.inputs, e.g. a history window); the same function object every epoch.
    top_k_fn(state, query, exclude, k) -> (scores, ids) [B, k], the top k of score_fn's scores
      found without scoring every item; None: rank score_fn's scores.
    eval_sets: the named evaluation views (eval.EvalSet): `select_on` (default 'valid') is evaluated every
      eval.every epochs and selects the model; every other view ('test', and e.g. 'test_no_image') is
      evaluated whenever the selected view improves, and reported at the best epoch.
    recommend_inputs(users) -> the per-user inputs score_fn reads to recommend next items from everything
      the user did (e.g. the window of the whole history); None: 'users' alone.
    prepare_epoch(consts, rng) -> the consts one epoch trains with (e.g. an edge-dropped graph); jittable,
      run at the start of every compiled epoch with an RNG split from the train state.
    consts_with(features, missing) -> the consts the model reads with other item features (missing: per
      modality, bool [num_items] masks of absent rows); None where the protocol cannot rebuild them.
    view_consts: views scored with other consts than the training ones (e.g. a modality missing for some
      items): their score state is score_state(params, view_consts[view], schedule).
    schedule: the model's EpochSchedule, or None. With one, loss_fn also takes `schedule=` (the epoch's
      schedule, from TrainState) and the loop updates it from the epoch's mean loss parts.
    """

    model_name: str
    dataset_name: str
    init_params: Callable[[jax.Array], Params]
    loss_fn: Callable[[Params, Consts, Batch, jax.Array, str | None], tuple[jax.Array, dict[str, jax.Array]]]
    epoch_batches: Callable[[int], dict[str, np.ndarray]]
    score_state: Callable[[Params, Consts, Any], Any]
    score_fn: ScoreFn
    consts: Consts
    eval_sets: Mapping[str, EvalSet]
    prepare_epoch: Callable[[Consts, jax.Array], Consts] = lambda consts, rng: consts
    schedule: EpochSchedule | None = None
    top_k_fn: TopKFn | None = None
    select_on: str = "valid"
    recommend_inputs: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    consts_with: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], Consts] | None = None
    view_consts: Mapping[str, Consts] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.select_on not in self.eval_sets and self.eval_sets:
            raise ConfigError(f"task {self.model_name}: the selection view {self.select_on!r} is not among its "
                              f"evaluation views {sorted(self.eval_sets)}")

    def consts_for(self, view: str) -> Consts:
        """The consts `view` is scored with."""
        return self.view_consts.get(view, self.consts)

    @property
    def report_views(self) -> tuple[str, ...]:
        """The views evaluated at each new best epoch besides the selection view, in the task's order."""
        return tuple(name for name in self.eval_sets if name != self.select_on)

    def initial_schedule(self) -> Any:
        """Epoch 0's schedule, or None for a model without one."""
        return None if self.schedule is None else self.schedule.init()
