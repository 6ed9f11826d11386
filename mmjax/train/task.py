"""The seam between a protocol (graph top-K, sequential, cold-start) and the shared trainer.

A protocol supplies batches, a loss and a scorer; the trainer owns the optimiser, the jitted epoch,
evaluation, early stopping and reporting, so no protocol copies the loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np

from mmjax.eval import EvalSet, TopKFn
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
    score_fn(state, users) -> scores [len(users), num_items]; the same function object every epoch.
    top_k_fn(state, users, exclude, k) -> (scores, ids) [len(users), k], the top k of score_fn's scores
      found without scoring every item; None: rank score_fn's scores.
    eval_sets: 'valid' and 'test' ground truth with the items to mask.
    prepare_epoch(consts, rng) -> the consts one epoch trains with (e.g. an edge-dropped graph); jittable,
      run at the start of every compiled epoch with an RNG split from the train state.
    schedule: the model's EpochSchedule, or None. With one, loss_fn also takes `schedule=` (the epoch's
      schedule, from TrainState) and the loop updates it from the epoch's mean loss parts.
    """

    model_name: str
    dataset_name: str
    init_params: Callable[[jax.Array], Params]
    loss_fn: Callable[[Params, Consts, Batch, jax.Array, str | None], tuple[jax.Array, dict[str, jax.Array]]]
    epoch_batches: Callable[[int], dict[str, np.ndarray]]
    score_state: Callable[[Params, Consts, Any], Any]
    score_fn: Callable[[Any, jax.Array], jax.Array]
    consts: Consts
    eval_sets: Mapping[str, EvalSet]
    prepare_epoch: Callable[[Consts, jax.Array], Consts] = lambda consts, rng: consts
    schedule: EpochSchedule | None = None
    top_k_fn: TopKFn | None = None

    def initial_schedule(self) -> Any:
        """Epoch 0's schedule, or None for a model without one."""
        return None if self.schedule is None else self.schedule.init()
