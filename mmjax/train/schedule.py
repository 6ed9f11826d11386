"""Epoch schedules: per-epoch training state a model's loss reads, kept in TrainState and checkpointed.

A schedule is a pytree of scalar arrays. The compiled epoch passes it to the loss at every step and, at
the end of the epoch, updates it from the epoch's mean loss parts (on device, so nothing leaves the
epoch scan). Being part of TrainState, it is saved and restored with the parameters, so a resumed run
continues in the stage it was in. The schedules themselves live beside the models that own them (e.g.
MAGNET's in models/magnet_schedule.py); the trainer only knows this contract.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax.numpy as jnp

from mmjax.errors import ConfigError

Schedule = dict[str, jnp.ndarray]


@dataclasses.dataclass(frozen=True)
class EpochSchedule:
    """How a model's schedule starts, moves and reads.

    init() -> the schedule of epoch 0.
    update(schedule, parts) -> the next epoch's schedule, from this epoch's mean loss parts; jittable.
    holds_early_stop(host) -> True while early stopping must not count bad epochs (host = to_host(s)).
    describe(trained_with, next) -> a short text for the epoch's log line from the host schedule the epoch
      trained with and the one the next epoch gets (e.g. 'stage 2 rho 0.40'); '' for nothing.
    to_host(schedule) -> JSON-safe dict, logged every epoch and stored with the best checkpoint.
    at_step(schedule, step, steps_per_epoch) -> the schedule the loss reads at global step `step` (the
      TrainState's step count, so a resumed run reads what an uninterrupted one would), for values that
      move within an epoch (e.g. a strength ramped per step); None: every step reads the epoch's schedule.
    """

    init: Callable[[], Schedule]
    update: Callable[[Schedule, dict[str, jnp.ndarray]], Schedule]
    holds_early_stop: Callable[[dict[str, Any]], bool]
    describe: Callable[[dict[str, Any], dict[str, Any]], str] = lambda trained_with, next_schedule: ""
    at_step: Callable[[Schedule, jnp.ndarray, int], Schedule] | None = None

    @staticmethod
    def to_host(schedule: Schedule) -> dict[str, float | int]:
        return {name: (int(value) if jnp.issubdtype(jnp.asarray(value).dtype, jnp.integer) else float(value))
                for name, value in schedule.items()}

    @staticmethod
    def from_host(host: dict[str, float | int], template: Schedule) -> Schedule:
        """The schedule saved by to_host, as arrays of the template's dtypes."""
        missing = sorted(set(template) - set(host))
        if missing:
            raise ConfigError(f"schedule: the checkpoint's schedule lacks {missing}")
        return {name: jnp.asarray(host[name], dtype=jnp.asarray(value).dtype) for name, value in template.items()}
