"""Orbax checkpoints of a run in <workdir>/checkpoints: the latest training state and the best-valid params.

`latest/<epochs done>` holds TrainState (params, optimiser state, step, RNG) and the RunProgress (early
stopping, best metrics, per-epoch records), the two older-than-latest steps kept so that a partial or
corrupt latest one can be skipped. `best/<epoch>` holds the params of the best-valid epoch with its
metrics: what `--mode=eval`, `--mode=recommend` and downstream models load.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from mmjax.errors import MmjaxError
from mmjax.train.state import RunProgress, TrainState

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
# Config fields a resumed run may change: they alter how long or how it runs, not what it computes.
RESUMABLE_CHANGES = ("train.num_epochs", "train.patience", "train.checkpoint_every", "train.distributed",
                     "eval.batch_size", "recommend")


def run_identity(config_dict: dict[str, Any], dataset_checksum: str) -> dict[str, Any]:
    """What must stay the same for a workdir's checkpoints to be resumed: config and data (JSON form)."""
    flat = json.loads(json.dumps(config_dict, default=str))
    for dotted in RESUMABLE_CHANGES:
        *parents, leaf = dotted.split(".")
        node = flat
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return {"config": flat, "dataset_checksum": dataset_checksum}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Dotted path of the first field where two JSON trees differ, or None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    return None if a == b else f"{path or '<root>'} ({json.dumps(a)} vs {json.dumps(b)})"


class _OrbaxWarningsOnly(logging.Filter):
    """Orbax narrates every save at INFO through absl's logger; keep its warnings and errors only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_OrbaxWarningsOnly())


def _manager(directory: str, keep: int, items: tuple[str, str]) -> ocp.CheckpointManager:
    """A manager keeping the newest `keep` steps; unfinished (tmp) saves of a killed run are removed."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(directory, options=options, item_names=items)


class RunCheckpoints:
    """The latest and best-valid checkpoints of one workdir."""

    def __init__(self, workdir: str, keep_latest: int = 2):
        root = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        self.root = root
        self._latest = _manager(os.path.join(root, "latest"), keep_latest, ("state", "progress"))
        self._best = _manager(os.path.join(root, "best"), 1, ("params", "info"))

    def check_same_run(self, identity: dict[str, Any]) -> None:
        """Records the run's config and data on first use; MmjaxError if a later start differs."""
        path = os.path.join(self.root, "run.json")
        if not os.path.exists(path):
            if jax.process_index() != 0:
                return  # the primary host records it
            with open(path, "w") as f:
                json.dump(identity, f, indent=1)
            return
        with open(path) as f:
            previous = json.load(f)
        difference = first_difference(previous, identity)
        if difference:
            raise MmjaxError(f"{path}: this workdir holds checkpoints of another run (differs at {difference}); "
                             "use a new --workdir or delete its checkpoints")

    def save_latest(self, state: TrainState, progress: RunProgress) -> None:
        """Saves (asynchronously) the state after `progress.epochs_done` epochs."""
        self._latest.save(progress.epochs_done, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress.to_json())))

    def latest_epochs_done(self) -> int | None:
        """Epochs done at the newest latest-state checkpoint (after pending saves), or None."""
        self._latest.wait_until_finished()
        return self._latest.latest_step()

    def restore_latest(self, template: TrainState) -> tuple[TrainState, RunProgress] | None:
        """The newest readable (state, progress), or None for a fresh run.

        A checkpoint that fails to restore is logged, moved to checkpoints/corrupt/ and skipped in favour
        of the one before.
        """
        for step in sorted(self._latest.all_steps(), reverse=True):
            try:
                restored = self._latest.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(template), progress=ocp.args.JsonRestore()))
                progress = RunProgress.from_json(restored.progress)
                if progress.epochs_done != step:
                    raise ValueError(f"progress says {progress.epochs_done} epochs done, the step is {step}")
                return restored.state, progress
            except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is skipped, not fatal
                moved = self._set_aside(step)
                logger.warning("checkpoint %s/latest/%d is partial or corrupt (%s: %s); moved to %s, "
                               "falling back to the one before", self.root, step, type(error).__name__,
                               (str(error).splitlines() or [""])[0][:200], moved)
        return None

    def save_best(self, epoch: int, params: Any, info: dict[str, Any]) -> None:
        """Saves the params of a new best-valid epoch (replacing the previous best)."""
        self._discard(self._best, lambda step: step >= epoch)
        self._best.save(epoch, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                                      info=ocp.args.JsonSave({"epoch": epoch, **info})))

    def discard_best_after(self, epochs_done: int) -> None:
        """Drops best checkpoints from epochs a resumed run will replay (they are saved again)."""
        self._discard(self._best, lambda step: step >= epochs_done)

    def restore_best(self, template_params: Any) -> tuple[Any, dict[str, Any]]:
        """(params, info) of the best-valid epoch; MmjaxError when the workdir has none."""
        step = self._best.latest_step()
        if step is None:
            raise MmjaxError(f"{self.root}/best: no best-valid checkpoint; train with --mode=train first")
        try:
            restored = self._best.restore(step, args=ocp.args.Composite(
                params=ocp.args.StandardRestore(template_params), info=ocp.args.JsonRestore()))
        except (ValueError, KeyError, TypeError) as error:
            raise MmjaxError(f"{self.root}/best/{step}: cannot be restored into this config's model "
                             f"({type(error).__name__}); use the config the run was trained with") from None
        return restored.params, restored.info

    def wait(self) -> None:
        """Blocks until asynchronous saves are on disk."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        self._latest.close()
        self._best.close()

    def _set_aside(self, step: int) -> str:
        """Moves an unreadable latest step out of the manager's way (kept for inspection)."""
        target = os.path.join(self.root, "corrupt", f"latest-{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(self.root, "latest", str(step)), target)
        self._latest.reload()
        return target

    @staticmethod
    def _discard(manager: ocp.CheckpointManager, condition) -> None:
        manager.wait_until_finished()
        for step in manager.all_steps():
            if condition(step):
                RunCheckpoints._delete(manager, step)

    @staticmethod
    def _delete(manager: ocp.CheckpointManager, step: int) -> None:
        try:
            manager.delete(step)
        except Exception as error:  # noqa: BLE001 - a step we cannot delete is only reported
            logger.warning("could not delete checkpoint step %d: %s", step, error)
