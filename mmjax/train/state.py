"""Explicit training state: everything a step reads and writes."""

from __future__ import annotations

from typing import Any

import jax
import optax
from flax import struct


@struct.dataclass
class TrainState:
    params: Any
    opt_state: optax.OptState
    step: jax.Array
    rng: jax.Array


@struct.dataclass
class EarlyStopping:
    """Host-side model-selection state: stop once more than `patience` evaluations fail to improve.

    Strict improvement of the monitored metric, as MMRec's early_stopping.
    """

    best_value: float = -float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> "EarlyStopping":
        if value > self.best_value:
            return EarlyStopping(best_value=value, best_epoch=epoch, bad_epochs=0)
        return self.replace(bad_epochs=self.bad_epochs + 1)

    def improved_at(self, epoch: int) -> bool:
        return self.best_epoch == epoch

    def should_stop(self, patience: int) -> bool:
        return self.bad_epochs > patience
