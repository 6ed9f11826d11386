"""MAGNET's two-stage routing regulariser schedule (specs/magnet.md §4), an EpochSchedule (train/schedule.py).

Stage 1 rewards high per-pair routing entropy (coverage); once the entropy's EMA is high and flat (or at
`max_trigger_epoch`) it fires, and the weight ρ ramps from 0 to 1 over `ramp_epochs` towards low per-pair
entropy (specialisation), with sparse top-k routing once ρ reaches 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from mmjax.errors import ConfigError
from mmjax.train.schedule import EpochSchedule, Schedule

SCHEDULE_MODES = ("entropy", "coverage", "specialise", "fixed")


@dataclasses.dataclass(frozen=True)
class EntropyTriggeredRouting:
    """Configuration of the two-stage routing schedule.

    mode: 'entropy' (trigger on the entropy EMA, at max_trigger_epoch at the latest), 'coverage' (never
      triggers), 'specialise' (ρ = 1 from epoch 0), 'fixed' (fires at max_trigger_epoch, no entropy test).
    The trigger fires at the end of epoch t0 when EMA >= min_entropy and |ΔEMA| < tolerance for `window`
    consecutive epochs; epoch t then trains with ρ = min(1, (t - t0) / ramp_epochs).
    """

    mode: str = "entropy"
    ema_decay: float = 0.9
    min_entropy: float = 0.8
    tolerance: float = 0.01
    window: int = 5
    max_trigger_epoch: int = 50
    ramp_epochs: int = 20

    def __post_init__(self) -> None:
        checks = [
            ("mode", self.mode in SCHEDULE_MODES, f"one of {SCHEDULE_MODES}"),
            ("ema_decay", 0.0 <= self.ema_decay < 1.0, "in [0, 1)"),
            ("min_entropy", 0.0 <= self.min_entropy <= 1.0, "in [0, 1]"),
            ("tolerance", self.tolerance >= 0.0, ">= 0"),
            ("window", self.window >= 1, ">= 1"),
            ("max_trigger_epoch", self.max_trigger_epoch >= 1, ">= 1"),
            ("ramp_epochs", self.ramp_epochs >= 0, ">= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"model.schedule.{name}: expected {expected}, got {getattr(self, name)!r}")

    def ramp(self, epoch: jnp.ndarray, trigger_epoch: jnp.ndarray) -> jnp.ndarray:
        """ρ of `epoch` given the trigger epoch (-1 = not fired): 0 before, then linear to 1."""
        if self.ramp_epochs == 0:
            progress = jnp.ones((), jnp.float32)
        else:
            progress = (epoch - trigger_epoch).astype(jnp.float32) / self.ramp_epochs
        return jnp.where(trigger_epoch >= 0, jnp.clip(progress, 0.0, 1.0), 0.0).astype(jnp.float32)

    def init(self) -> Schedule:
        # 'specialise' counts as fired before epoch 0, with ρ = 1 throughout.
        specialise = self.mode == "specialise"
        return {"epoch": jnp.zeros((), jnp.int32), "entropy_ema": jnp.asarray(-1.0, jnp.float32),
                "stable_epochs": jnp.zeros((), jnp.int32),
                "trigger_epoch": jnp.asarray(0 if specialise else -1, jnp.int32),
                "rho": jnp.asarray(1.0 if specialise else 0.0, jnp.float32)}

    def update(self, schedule: Schedule, parts: dict[str, jnp.ndarray]) -> Schedule:
        """After epoch `schedule['epoch']`, whose mean normalised per-pair entropy is parts['entropy']."""
        epoch = schedule["epoch"]
        entropy = parts["entropy"].astype(jnp.float32)
        previous = schedule["entropy_ema"]
        first = previous < 0
        ema = jnp.where(first, entropy, self.ema_decay * previous + (1.0 - self.ema_decay) * entropy)
        flat = jnp.logical_and(~first, jnp.abs(ema - previous) < self.tolerance)
        stable = jnp.where(flat, schedule["stable_epochs"] + 1, 0).astype(jnp.int32)
        at_cap = epoch + 1 >= self.max_trigger_epoch
        if self.mode == "entropy":
            fire = jnp.logical_or(jnp.logical_and(ema >= self.min_entropy, stable >= self.window), at_cap)
        elif self.mode == "fixed":
            fire = at_cap
        else:  # coverage never fires; specialise fired at init
            fire = jnp.zeros((), bool)
        not_fired = schedule["trigger_epoch"] < 0 if self.mode != "specialise" else jnp.zeros((), bool)
        trigger = jnp.where(jnp.logical_and(not_fired, fire), epoch, schedule["trigger_epoch"]).astype(jnp.int32)
        if self.mode == "specialise":
            rho = jnp.ones((), jnp.float32)
        else:
            rho = self.ramp(epoch + 1, trigger)
        return {"epoch": (epoch + 1).astype(jnp.int32), "entropy_ema": ema, "stable_epochs": stable,
                "trigger_epoch": trigger, "rho": rho}

    def holds_early_stop(self, host: dict[str, Any]) -> bool:
        """Stage 1 of a schedule that will fire: patience starts counting only after the trigger."""
        return self.mode in ("entropy", "fixed") and int(host["trigger_epoch"]) < 0

    @staticmethod
    def describe(trained_with: dict[str, Any], next_schedule: dict[str, Any]) -> str:
        """'stage 1|2 rho x' of the epoch, and '(trigger fired)' when it fired at the epoch's end."""
        fired_before = trained_with.get("trigger_epoch", -1) >= 0
        text = f"stage {2 if fired_before else 1} rho {trained_with.get('rho', 0.0):.2f}"
        if next_schedule.get("trigger_epoch", -1) >= 0 and not fired_before:
            text += " (trigger fired)"
        return text

    def as_epoch_schedule(self) -> EpochSchedule:
        return EpochSchedule(init=self.init, update=self.update, holds_early_stop=self.holds_early_stop,
                             describe=self.describe)
