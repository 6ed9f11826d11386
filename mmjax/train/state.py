"""Explicit training state: everything a step reads and writes, and the host-side run progress."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


def all_finite(tree: Any) -> jax.Array:
    """bool scalar: every float leaf of a pytree is free of NaN and inf (traceable, e.g. inside a step)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


_all_finite = jax.jit(all_finite)


def is_finite(tree: Any) -> bool:
    """Whether every float leaf of a pytree (params, a score state) is free of NaN and inf; one reduction
    on device, one bool to the host."""
    return bool(_all_finite(tree))


@struct.dataclass
class TrainState:
    """Parameters, optimiser state, step, RNG and the model's epoch schedule (None for most models)."""

    params: Any
    opt_state: optax.OptState
    step: jax.Array
    rng: jax.Array
    schedule: Any = None


@struct.dataclass
class EarlyStopping:
    """Host-side model-selection state: stop once more than `patience` evaluations fail to improve.

    Strict improvement of the monitored metric, as MMRec's early_stopping; with `later_ties` a value equal
    to the best also counts as one (the later epoch is kept and patience restarts), as RecBole's.
    """

    best_value: float = -float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int, count_bad: bool = True, later_ties: bool = False) -> "EarlyStopping":
        """`count_bad=False` (e.g. before a schedule's trigger) tracks the best without using up patience."""
        if value > self.best_value or (later_ties and value == self.best_value):
            return EarlyStopping(best_value=value, best_epoch=epoch, bad_epochs=0)
        return self.replace(bad_epochs=self.bad_epochs + int(count_bad))

    def improved_at(self, epoch: int) -> bool:
        return self.best_epoch == epoch

    def should_stop(self, patience: int) -> bool:
        return self.bad_epochs > patience


@dataclasses.dataclass(frozen=True)
class RunProgress:
    """What the loop knows besides TrainState: checkpointed with it, so a resumed run continues exactly.

    `records` are the per-epoch metrics.jsonl records so far; `best` maps each evaluation view (valid,
    test, ...) to its metrics at the best epoch of the selection view.
    """

    epochs_done: int = 0
    stopper: EarlyStopping = EarlyStopping()
    best: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    records: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (-inf, before any evaluation, becomes None)."""
        best_value = self.stopper.best_value
        return {"epochs_done": self.epochs_done,
                "stopper": {"best_value": best_value if math.isfinite(best_value) else None,
                            "best_epoch": self.stopper.best_epoch, "bad_epochs": self.stopper.bad_epochs},
                "best": self.best, "records": list(self.records)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunProgress":
        stopper = data["stopper"]
        best_value = -float("inf") if stopper["best_value"] is None else float(stopper["best_value"])
        return cls(epochs_done=int(data["epochs_done"]),
                   stopper=EarlyStopping(best_value=best_value, best_epoch=int(stopper["best_epoch"]),
                                         bad_epochs=int(stopper["bad_epochs"])),
                   best=best_views(data), records=tuple(data["records"]))


def best_views(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The per-view best metrics of a saved RunProgress, also from checkpoints that kept only valid and test."""
    if "best" in data:
        return {view: dict(metrics) for view, metrics in data["best"].items()}
    legacy = {"valid": data.get("best_valid") or {}, "test": data.get("best_test") or {}}
    return {view: dict(metrics) for view, metrics in legacy.items() if metrics}
