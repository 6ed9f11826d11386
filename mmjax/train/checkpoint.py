"""Orbax checkpoints of a run in <workdir>/checkpoints: the latest training state and the best-valid params.

`latest/<epochs done>` holds TrainState (params, optimiser state, step, RNG) and the RunProgress (early
stopping, best metrics, per-epoch records); `best/<epoch>` holds the params of a best-valid epoch with its
metrics: what `--mode=eval`, `--mode=recommend` and downstream models load. Two steps of each are kept.

Every save carries SHA-256 checksums of what it holds (the arrays, and the JSON beside them), and every
restore recomputes them: a checkpoint that fails to restore, does not match its checksums or holds
non-finite parameters is moved to checkpoints/corrupt/ with a warning, and the step before it is used.
`run.json` records the config and data the checkpoints belong to; training, eval and recommend refuse a
workdir whose checkpoints were made by another config or on other data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp

from mmjax.errors import MmjaxError
from mmjax.train.state import RunProgress, TrainState, is_finite

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKSUMS = "checksums"  # key of the checksums in a step's JSON item
# Config fields a resumed run may change: they alter how long or how it runs, not what it computes.
RESUMABLE_CHANGES = ("train.num_epochs", "train.patience", "train.checkpoint_every", "train.distributed",
                     "train.tensorboard", "train.progress", "eval.batch_size", "recommend")
# ... and what eval / recommend may change besides: the cut-offs reported and a missing-modality view (the
# monitor, which chose the best checkpoint, must stay).
EVALUATION_CHANGES = RESUMABLE_CHANGES + ("eval.ks", "eval.metrics", "eval.drop_modality", "eval.drop_fraction",
                                          "eval.drop_seed")
# Config fields added after runs were recorded, with the value that keeps what those runs did: a recorded
# identity without one is read with it, so an upgrade does not make earlier workdirs unresumable.
# (Fields in RESUMABLE_CHANGES never enter an identity, so they need no entry.)
ADDED_FIELDS = {"eval.monitor_decimals": None, "eval.ties": "first", "eval.selection_only": False,
                "data.item_category_field": "auto", "eval.first_epoch": None,
                "eval.drop_modality": None, "eval.drop_fraction": 1.0, "eval.drop_seed": 0}


class CorruptCheckpointError(Exception):
    """A checkpoint step restored, but not to what was saved (checksum mismatch, non-finite state)."""


def without_fields(tree: dict[str, Any], dotted_fields: tuple[str, ...]) -> dict[str, Any]:
    """`tree` (a nested config dict, changed in place) without the dotted fields named."""
    for dotted in dotted_fields:
        *parents, leaf = dotted.split(".")
        node = tree
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return tree


def with_added_fields(config_tree: dict[str, Any]) -> dict[str, Any]:
    """A recorded config (changed in place) with each of ADDED_FIELDS it predates set to its old behaviour."""
    for dotted, value in ADDED_FIELDS.items():
        *parents, leaf = dotted.split(".")
        node = config_tree
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf not in node:
            node[leaf] = value
    return config_tree


def run_identity(config_dict: dict[str, Any], dataset_checksum: str,
                 ignored: tuple[str, ...] = RESUMABLE_CHANGES, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What must stay the same for a workdir's checkpoints to be used: config (less `ignored`), data, and
    the run's other inputs where it has any (e.g. a phase-1 run's item vectors, train/pretrained.py)."""
    identity = {"config": without_fields(json.loads(json.dumps(config_dict, default=str)), ignored),
                "dataset_checksum": dataset_checksum}
    if inputs:
        identity["inputs"] = inputs
    return identity


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Dotted path of the first field where two JSON trees differ, or None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    return None if a == b else f"{path or '<root>'} ({json.dumps(a)} vs {json.dumps(b)})"


def tree_digest(tree: Any) -> str:
    """SHA-256 over a pytree's leaves in order: each leaf's path, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        array = np.ascontiguousarray(jax.device_get(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.reshape(-1).view(np.uint8))  # the same bytes as tobytes(), without a copy
    return digest.hexdigest()


def json_digest(data: Any) -> str:
    """SHA-256 of a JSON value's canonical text (sorted keys), equal before a save and after a restore."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def with_checksums(data: dict[str, Any], **trees: Any) -> dict[str, Any]:
    """`data` plus the checksums of itself and of each named pytree saved beside it."""
    return {**data, CHECKSUMS: {"json": json_digest(data), **{name: tree_digest(t) for name, t in trees.items()}}}


def verified(where: str, data: dict[str, Any], **trees: Any) -> dict[str, Any]:
    """`data` without its checksums; CorruptCheckpointError when it or a pytree differs from what was saved.

    A step saved before checkpoints carried checksums is restored unverified, with a warning.
    """
    data = dict(data)
    checksums = data.pop(CHECKSUMS, None)
    if checksums is None:
        logger.warning("%s carries no checksums (saved before mmjax checked its checkpoints); restored "
                       "unverified", where)
        return data
    for name, actual in [("json", json_digest(data))] + [(name, tree_digest(t)) for name, t in trees.items()]:
        if checksums.get(name) != actual:
            raise CorruptCheckpointError(f"its {name} part does not match the checksum saved with it")
    return data


class _OrbaxWarningsOnly(logging.Filter):
    """Orbax narrates every save at INFO through absl's logger; keep its warnings and errors only, and of
    those not the tracebacks its worker threads log for a failed save: that error is raised to the caller
    (wait_until_finished), which reports it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}orbax{os.sep}" not in record.pathname:
            return True
        if record.levelno >= logging.ERROR:
            return not record.exc_info
        return record.levelno >= logging.WARNING and not record.getMessage().startswith(READ_ONLY_NOTICES)


# What Orbax says of every read-only manager (eval and recommend open the workdir read-only).
READ_ONLY_NOTICES = ("Given directory is read only", "CheckpointManagerOptions.read_only=True")


class _OrbaxTaskFailures(logging.Filter):
    """asyncio logs "Task exception was never retrieved" with a traceback when a failed Orbax write task is
    garbage-collected (a full disk, say); that error reaches the caller, so drop asyncio's copy of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f"{os.sep}{package}{os.sep}" in message for package in ("orbax", "tensorstore"))


logging.getLogger("absl").addFilter(_OrbaxWarningsOnly())
logging.getLogger("asyncio").addFilter(_OrbaxTaskFailures())


def _manager(directory: str, keep: int, items: tuple[str, str], read_only: bool) -> ocp.CheckpointManager:
    """A manager keeping the newest `keep` steps; unfinished (tmp) saves of a killed run are removed."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                           cleanup_tmp_directories=not read_only)
    return ocp.CheckpointManager(directory, options=options, item_names=items)


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


class RunCheckpoints:
    """The latest and best-valid checkpoints of one workdir; a context manager that waits and closes.

    `read_only` (eval, recommend) creates nothing and refuses a workdir without best-valid checkpoints.
    """

    def __init__(self, workdir: str, keep_latest: int = 2, keep_best: int = 2, read_only: bool = False):
        self.root = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        if read_only and not os.path.isdir(os.path.join(self.root, "best")):
            raise MmjaxError(f"{self.root}/best: no best-valid checkpoint; train with --mode=train first")
        self._latest = _manager(os.path.join(self.root, "latest"), keep_latest, ("state", "progress"), read_only)
        self._best = _manager(os.path.join(self.root, "best"), keep_best, ("params", "info"), read_only)

    def __enter__(self) -> "RunCheckpoints":
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.wait()
        finally:
            self.close()

    # -- which run the checkpoints belong to

    @property
    def run_json(self) -> str:
        return os.path.join(self.root, "run.json")

    def has_checkpoints(self) -> bool:
        """Whether any finished latest or best step exists."""
        return bool(self._latest.all_steps() or self._best.all_steps())

    def _recorded_identity(self) -> dict[str, Any] | None:
        if not os.path.exists(self.run_json):
            return None
        try:
            with open(self.run_json) as f:
                recorded = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise MmjaxError(f"{self.run_json}: not valid JSON ({error}); it records which config made these "
                             "checkpoints") from None
        if isinstance(recorded, dict) and isinstance(recorded.get("config"), dict):
            with_added_fields(recorded["config"])
        return recorded

    def check_same_run(self, identity: dict[str, Any]) -> None:
        """Records the run's config and data; MmjaxError if the workdir's checkpoints were made by another.

        A workdir whose earlier run saved no checkpoint (it failed before its first epoch ended) takes the
        new config.
        """
        previous = self._recorded_identity()
        difference = None if previous is None else first_difference(previous, identity)
        if previous is not None and difference is None:
            return
        if difference is not None:
            if self.has_checkpoints():
                raise MmjaxError(f"{self.run_json}: this workdir holds checkpoints of another run (differs at "
                                 f"{difference}); use a new --workdir or delete its checkpoints")
            logger.info("%s: the run recorded there saved no checkpoint; recording this run's config instead "
                        "(it differed at %s)", self.run_json, difference)
        if jax.process_index() == 0:  # the primary host records it
            os.makedirs(self.root, exist_ok=True)
            partial = self.run_json + ".tmp"
            with open(partial, "w") as f:
                json.dump(identity, f, indent=1)
            os.replace(partial, self.run_json)

    def check_trained_with(self, identity: dict[str, Any]) -> None:
        """MmjaxError unless the checkpoints were trained with this config (`EVALUATION_CHANGES` aside) and
        on this data: eval and recommend must not score parameters against another model or split."""
        previous = self._recorded_identity()
        if previous is None:
            raise MmjaxError(f"{self.run_json}: missing, so nothing tells which config and data trained these "
                             "checkpoints; retrain in a new --workdir")
        previous = {**previous, "config": without_fields(previous.get("config", {}), EVALUATION_CHANGES)}
        difference = first_difference(previous, identity)
        if difference is None:
            return
        what = "on other data: the dataset checksum" if difference.startswith("dataset_checksum") else \
            "with another config: it"
        raise MmjaxError(f"{self.run_json}: the checkpoints were trained {what} differs at {difference}; "
                         "use the config and data the run was trained with")

    # -- latest training state

    def save_latest(self, state: TrainState, progress: RunProgress) -> None:
        """Saves (asynchronously) the state after `progress.epochs_done` epochs, with its checksums."""
        self._latest.save(progress.epochs_done, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            progress=ocp.args.JsonSave(with_checksums(progress.to_json(), state=state))))

    def latest_epochs_done(self) -> int | None:
        """Epochs done at the newest latest-state checkpoint (after pending saves), or None."""
        self._latest.wait_until_finished()
        return self._latest.latest_step()

    def restore_latest(self, template: TrainState) -> tuple[TrainState, RunProgress] | None:
        """The newest intact (state, progress), or None for a fresh run; corrupt steps are set aside."""
        def restore(step: int) -> tuple[TrainState, RunProgress]:
            restored = self._latest.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), progress=ocp.args.JsonRestore()))
            progress = RunProgress.from_json(verified(f"{self.root}/latest/{step}", restored.progress,
                                                      state=restored.state))
            if progress.epochs_done != step:
                raise CorruptCheckpointError(f"progress says {progress.epochs_done} epochs done, the step is {step}")
            if not is_finite(restored.state.params):
                raise CorruptCheckpointError("its parameters are not finite")
            return restored.state, progress

        for _, restored in self._intact_steps("latest", self._latest, restore):
            return restored
        return None

    # -- best-valid params

    def save_best(self, epoch: int, params: Any, info: dict[str, Any]) -> None:
        """Saves the params of a new best-valid epoch (the previous best is kept as a fallback)."""
        self._discard(self._best, lambda step: step >= epoch)
        self._best.save(epoch, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            info=ocp.args.JsonSave(with_checksums({"epoch": epoch, **info}, params=params))))

    def discard_best_after(self, epochs_done: int) -> None:
        """Drops best checkpoints from epochs a resumed run will replay (they are saved again)."""
        self._discard(self._best, lambda step: step >= epochs_done)

    def restore_best(self, template_params: Any) -> tuple[Any, dict[str, Any]]:
        """(params, info) of the newest intact best-valid epoch; MmjaxError when there is none.

        When the newest is corrupt, the best-valid epoch before it is used, with a warning: its metrics
        are those of that epoch, not of the run's reported best.
        """
        steps = sorted(self._best.all_steps(), reverse=True)
        if not steps:
            raise MmjaxError(f"{self.root}/best: no best-valid checkpoint; train with --mode=train first")
        for step, restored in self._intact_steps("best", self._best, self._best_restorer(template_params)):
            if step != steps[0]:
                logger.warning("using %s/best/%d, the best-valid epoch before the corrupt best/%d: its metrics "
                               "are those of epoch %d, not of the run's reported best epoch", self.root, step,
                               steps[0], step)
            return restored
        raise MmjaxError(f"{self.root}/best: every best-valid checkpoint ({', '.join(map(str, steps))}) is corrupt "
                         f"and was moved to {self.root}/corrupt; retrain with --mode=train")

    def check_best(self, template_params: Any, best_epoch: int) -> None:
        """On a resume: sets corrupt best-valid steps aside now, and warns when the run's best epoch is left
        without an intact checkpoint (eval and recommend would load an earlier one)."""
        intact = next(self._intact_steps("best", self._best, self._best_restorer(template_params)), None)
        if best_epoch >= 0 and (intact is None or intact[0] != best_epoch):
            logger.warning("the run's best epoch %d has no intact checkpoint in %s/best; unless a later epoch "
                           "improves on it, eval and recommend will load %s", best_epoch, self.root,
                           "none" if intact is None else f"epoch {intact[0]}")

    def _best_restorer(self, template_params: Any) -> Callable[[int], tuple[Any, dict[str, Any]]]:
        def restore(step: int) -> tuple[Any, dict[str, Any]]:
            restored = self._best.restore(step, args=ocp.args.Composite(
                params=ocp.args.StandardRestore(template_params), info=ocp.args.JsonRestore()))
            info = verified(f"{self.root}/best/{step}", restored.info, params=restored.params)
            if not is_finite(restored.params):
                raise CorruptCheckpointError("its parameters are not finite")
            return restored.params, info

        return restore

    def wait(self) -> None:
        """Blocks until asynchronous saves are on disk."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        self._latest.close()
        self._best.close()

    def _intact_steps(self, kind: str, manager: ocp.CheckpointManager,
                      restore: Callable[[int], Any]) -> Iterator[tuple[int, Any]]:
        """(step, restore(step)) for the steps that restore intact, newest first; the others are logged
        and moved to checkpoints/corrupt/."""
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                restored = restore(step)
            except Exception as error:  # noqa: BLE001 - an unreadable checkpoint is set aside, not fatal
                moved = self._set_aside(kind, manager, step)
                logger.warning("checkpoint %s/%s/%d is partial or corrupt (%s); %s, falling back to the one "
                               "before", self.root, kind, step, _first_line(error), moved)
                continue
            yield step, restored

    def _set_aside(self, kind: str, manager: ocp.CheckpointManager, step: int) -> str:
        """Moves an unreadable step out of the manager's way (kept for inspection); says where."""
        target = os.path.join(self.root, "corrupt", f"{kind}-{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(self.root, kind, str(step)), target)
        except OSError as error:
            return f"could not be moved aside ({error.strerror})"
        manager.reload()
        return f"moved to {target}"

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
