"""The shared trainer: pmapped whole-epoch scans, evaluation of a task's views, early stopping, checkpoints.

A run checkpoints its TrainState and RunProgress every `train.checkpoint_every` epochs (and at its last
epoch); started again with the same workdir it resumes from the newest readable checkpoint and, as
batches depend only on (seed, epoch) and the state holds the RNG, ends exactly where an uninterrupted
run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mmjax.errors import ConfigError, check_fields
from mmjax.eval import METRICS, NonFiniteScoresError, check_metrics, evaluate, parse_metric
from mmjax.train import report
from mmjax.train.checkpoint import RunCheckpoints, run_identity
from mmjax.train.progress import StepBar, wants_bar
from mmjax.train.parallel import (AXIS, check_global_batch, is_primary_host, replicate, shard_batches,
                                  unreplicate)
from mmjax.train.state import RunProgress, TrainState, all_finite
from mmjax.train.schedule import EpochSchedule
from mmjax.train.task import Task
from mmjax.train.workdir_lock import workdir_lock

TIES = ("first", "last")  # eval.ties: which of several epochs with the best monitor value is kept

logger = logging.getLogger(__name__)


class NonFiniteTrainingError(FloatingPointError):
    """An epoch produced a NaN or inf loss, parameters or scores; the run stops, saving nothing of it."""


def learning_rate_schedule(train_cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """lr * decay ** (epoch / decay_every), stepped once per epoch (MMRec's LambdaLR)."""
    base, decay, every = float(train_cfg.learning_rate), float(train_cfg.lr_decay), float(train_cfg.lr_decay_every)
    if base <= 0 or not math.isfinite(base):
        raise ConfigError(f"train.learning_rate: expected a finite value > 0, got {base}")
    if not 0 < decay <= 1 or every <= 0:
        raise ConfigError(f"train.lr_decay / lr_decay_every: expected 0 < decay <= 1 and every > 0, "
                          f"got {decay} / {every}")
    return lambda step: base * decay ** ((step // steps_per_epoch) / every)


def global_loss_and_grads(task: Task, params: Any, consts: Any, batch: dict[str, jax.Array],
                          rng: jax.Array, schedule: Any = None) -> tuple[jax.Array, dict[str, jax.Array], Any]:
    """Inside pmap: the global batch's loss, its parts and its gradient, the same on every device.

    Each device differentiates the global loss (batch reductions are psums over AXIS); the psums'
    transposes spread each device's cotangent to all devices, so the mean of the devices' gradients is
    the global gradient. `schedule` goes to the loss of a task that has one.
    """
    loss_fn = task.loss_fn if task.schedule is None else functools.partial(task.loss_fn, schedule=schedule)
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, consts, batch, rng, AXIS)
    return loss, parts, jax.lax.pmean(grads, AXIS)


GRADIENT_SCOPE, OPTIMISER_SCOPE = "loss_and_gradient", "optimiser_update"  # a step's two halves, in profiles


def make_train_epoch(task: Task, optimizer: optax.GradientTransformation,
                     on_step: Callable[[Any], None] | None = None) -> Callable:
    """A pmapped (state, consts, batches) -> (state, per-step losses, mean loss parts) over one epoch.

    State and consts are replicated, batches sharded; each device computes the global batch's loss
    (see losses.batch_sum) and the devices average their gradients, so every replica takes the same step.
    A task's schedule is read by every step and updated once, from the epoch's mean loss parts.
    `on_step(device index)` is called on the host after each step (the progress bar); it reads nothing of
    the step's values.
    """

    def train_step(carry, batch, steps_per_epoch):
        state, consts = carry
        if on_step is not None:
            jax.debug.callback(on_step, jax.lax.axis_index(AXIS))
        rng, step_rng = jax.random.split(state.rng)
        schedule = state.schedule
        if task.schedule is not None and task.schedule.at_step is not None:
            schedule = task.schedule.at_step(schedule, state.step, steps_per_epoch)
        # named scopes label the compiled program's ops for profiles (experiments/profile_step.py) only
        with jax.named_scope(GRADIENT_SCOPE):
            loss, parts, grads = global_loss_and_grads(task, state.params, consts, batch, step_rng, schedule)
        with jax.named_scope(OPTIMISER_SCOPE):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1, rng=rng)
        return (new_state, consts), (loss, parts)

    def train_epoch(state: TrainState, consts: Any, batches: dict[str, jax.Array]):
        rng, epoch_rng = jax.random.split(state.rng)
        epoch_consts = task.prepare_epoch(consts, epoch_rng)
        steps_per_epoch = jax.tree_util.tree_leaves(batches)[0].shape[0]
        (state, _), (losses, parts) = jax.lax.scan(functools.partial(train_step, steps_per_epoch=steps_per_epoch),
                                                   (state.replace(rng=rng), epoch_consts), batches)
        mean_parts = jax.tree_util.tree_map(jnp.mean, parts)
        if task.schedule is not None:
            state = state.replace(schedule=task.schedule.update(state.schedule, mean_parts))
        # a finite loss does not mean finite updated parameters; checked here, not by a program of its own
        return state, losses, mean_parts, all_finite(state.params)

    return jax.pmap(train_epoch, axis_name=AXIS, donate_argnums=0)


def validate_train_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first out-of-range training field."""
    checks = [
        ("train.num_epochs", cfg.num_epochs, cfg.num_epochs >= 1, ">= 1"),
        ("train.batch_size", cfg.batch_size, cfg.batch_size >= 1, ">= 1"),
        ("train.patience", cfg.patience, cfg.patience >= 0, ">= 0"),
        ("train.checkpoint_every", cfg.checkpoint_every, cfg.checkpoint_every >= 1, ">= 1"),
        ("train.tensorboard", cfg.get("tensorboard", False), isinstance(cfg.get("tensorboard", False), bool),
         "True or False"),
    ]
    check_fields(checks)


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """What evaluation computes and how often: metrics at ks, the monitored one, every how many epochs."""

    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    monitor: str
    every: int
    batch_size: int
    monitor_decimals: int | None = None  # the monitor rounded to this many decimals before comparing
    later_ties: bool = False  # an evaluation equal to the best replaces it (eval.ties = 'last')
    selection_only: bool = False  # only the selection view is evaluated (hyper-parameter trials: no test)
    first_epoch: int | None = None  # the first evaluated epoch (0-based); None: every - 1

    def selection_value(self, metrics: dict[str, float]) -> float:
        """The monitored metric as model selection compares it (rounded when monitor_decimals is set)."""
        value = float(metrics[self.monitor])
        return value if self.monitor_decimals is None else round(value, self.monitor_decimals)

    def headline(self) -> tuple[str, ...]:
        """The monitor and the other metrics at its k (at most three names), for log lines."""
        _, k = parse_metric(self.monitor)
        return (self.monitor,) + tuple(f"{m}@{k}" for m in self.metrics if f"{m}@{k}" != self.monitor)[:2]

    def due(self, epoch: int, num_epochs: int) -> bool:
        """Whether `epoch` (0-based) is evaluated: every `every` epochs from `first_epoch` (default: after the
        first `every` epochs) and always at the last one."""
        first = self.every - 1 if self.first_epoch is None else self.first_epoch
        return (epoch >= first and (epoch - first) % self.every == 0) or epoch + 1 == num_epochs


def eval_spec(eval_cfg: ml_collections.ConfigDict) -> EvalSpec:
    """The EvalSpec of the eval config; ConfigError for a monitor that is not a computed metric or a bad
    eval.every."""
    ks = tuple(sorted({int(k) for k in eval_cfg.ks}))
    metrics = check_metrics(tuple(eval_cfg.get("metrics", METRICS)))
    monitor = str(eval_cfg.monitor)
    parsed = parse_metric(monitor)
    if parsed is None or parsed[0] not in metrics or parsed[1] not in ks:
        raise ConfigError(f"eval.monitor: expected '<metric>@k' with a metric in eval.metrics {metrics} and k in "
                          f"eval.ks {ks}, got {monitor!r}")
    every = eval_cfg.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"eval.every: expected an int >= 1 (epochs between evaluations), got {every!r}")
    decimals = eval_cfg.get("monitor_decimals", None)
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
        raise ConfigError(f"eval.monitor_decimals: expected None or an int >= 0, got {decimals!r}")
    ties = eval_cfg.get("ties", "first")
    if ties not in TIES:
        raise ConfigError(f"eval.ties: expected one of {TIES}, got {ties!r}")
    selection_only = eval_cfg.get("selection_only", False)
    if not isinstance(selection_only, bool):
        raise ConfigError(f"eval.selection_only: expected True or False, got {selection_only!r}")
    first_epoch = eval_cfg.get("first_epoch", None)
    if first_epoch is not None and (isinstance(first_epoch, bool) or not isinstance(first_epoch, int)
                                    or first_epoch < 0):
        raise ConfigError(f"eval.first_epoch: expected None or an int >= 0 (0-based epoch), got {first_epoch!r}")
    return EvalSpec(ks=ks, metrics=metrics, monitor=monitor, every=every, batch_size=int(eval_cfg.batch_size),
                    monitor_decimals=decimals, later_ties=ties == "last", selection_only=selection_only,
                    first_epoch=first_epoch)


def check_monitor(eval_cfg: ml_collections.ConfigDict) -> tuple[tuple[int, ...], str]:
    """(ks, monitor) of the eval config (eval_spec's checks)."""
    spec = eval_spec(eval_cfg)
    return spec.ks, spec.monitor


def format_metrics(view: str, metrics: dict[str, float], names: tuple[str, ...]) -> str:
    """'valid ndcg@10 0.0612 recall@10 0.1130' for the names the view has."""
    return view + "".join(f" {name} {metrics[name]:.4f}" for name in names if name in metrics)


@dataclasses.dataclass(frozen=True)
class EpochTrainer:
    """A run's optimiser and its compiled whole-epoch step over replicated consts (used by fit and benchmarks)."""

    task: Task
    optimizer: optax.GradientTransformation
    steps_per_epoch: int
    train_epoch: Callable
    replicated_consts: Any
    first_batches: dict[str, np.ndarray]  # epoch 0's, drawn once to learn the steps per epoch

    @classmethod
    def build(cls, task: Task, train_cfg: ml_collections.ConfigDict,
              on_step: Callable[[Any], None] | None = None) -> "EpochTrainer":
        check_global_batch(int(train_cfg.batch_size))
        first_batches = task.epoch_batches(0)
        steps_per_epoch = int(next(iter(first_batches.values())).shape[0])
        optimizer = optax.adam(learning_rate_schedule(train_cfg, steps_per_epoch))
        return cls(task=task, optimizer=optimizer, steps_per_epoch=steps_per_epoch,
                   train_epoch=make_train_epoch(task, optimizer, on_step), replicated_consts=replicate(task.consts),
                   first_batches=first_batches)

    def initial_state(self, seed: int) -> TrainState:
        """Fresh parameters and optimiser state; the RNG left over drives the steps."""
        params_rng, train_rng = jax.random.split(jax.random.PRNGKey(seed))
        params = self.task.init_params(params_rng)
        return TrainState(params=params, opt_state=self.optimizer.init(params), step=jnp.zeros((), jnp.int32),
                          rng=train_rng, schedule=self.task.initial_schedule())

    def run_epoch(self, replicated_state: TrainState,
                  epoch: int) -> tuple[TrainState, np.ndarray, dict[str, float], bool]:
        """The replicated state after `epoch`, its per-step global-batch losses (a host array), the
        epoch's mean loss parts and whether the updated parameters are all finite."""
        host_batches = self.first_batches if epoch == 0 else self.task.epoch_batches(epoch)
        state, losses, parts, finite = self.train_epoch(replicated_state, self.replicated_consts,
                                                        shard_batches(host_batches))
        # every device holds the same global-batch values
        return (state, np.asarray(losses[0]), {name: float(value[0]) for name, value in parts.items()},
                bool(finite[0]))


def first_non_finite(losses: np.ndarray) -> int | None:
    """Index of the first NaN/inf step loss, or None."""
    bad = np.flatnonzero(~np.isfinite(losses))
    return int(bad[0]) if len(bad) else None


EvaluationObserver = Callable[[int, dict[str, float]], None]


def fit(task: Task, config: ml_collections.ConfigDict, workdir: str, metadata: dict[str, Any] | None = None,
        on_evaluation: EvaluationObserver | None = None) -> dict[str, Any]:
    """Trains (or resumes) until early stopping or num_epochs; returns (and writes) the results record.

    `metadata` (dataset checksum, command, ...) is merged into results.json as it is. `on_evaluation(epoch,
    metrics)` is called with the selection view's metrics after each evaluated epoch has been recorded and
    checkpointed (on a resumed run first for the restored epochs); an exception it raises (a pruned
    hyper-parameter trial) ends the run there, resumable.
    """
    train_cfg = config.train
    validate_train_config(train_cfg)
    spec = eval_spec(config.eval)
    bar = StepBar() if is_primary_host() and wants_bar(str(train_cfg.get("progress", "auto"))) else None
    commit = (metadata or {}).get("commit")  # recorded per epoch: a resumed run may span checkouts
    lock = workdir_lock(workdir) if is_primary_host() else contextlib.nullcontext()
    try:
        trainer = EpochTrainer.build(task, train_cfg, bar.on_step if bar is not None else None)
        state = trainer.initial_state(int(train_cfg.seed))
        with lock:
            with RunCheckpoints(workdir) as checkpoints:
                checkpoints.check_same_run(run_identity(config.to_dict(),
                                                        str((metadata or {}).get("dataset_checksum", "")),
                                                        inputs=(metadata or {}).get("inputs")))
                progress, writer = train_epochs(task, trainer, state, checkpoints, config, workdir, commit,
                                                on_evaluation, bar)
            results = summarise(task, progress, spec.monitor, int(train_cfg.seed), metadata)
            writer.results(results, config)
    finally:
        release_compiled_programs()
    shown = [view for view in task.report_views if progress.best.get(view)] or [task.select_on]
    logger.info("best epoch %d | %s | %.2f s per epoch", progress.stopper.best_epoch,
                " | ".join(format_metrics(view, progress.best.get(view, {}), spec.headline()) for view in shown),
                results["seconds_per_epoch"])
    logger.info("metrics at the best epoch (%d of %d run):\n%s", progress.stopper.best_epoch, progress.epochs_done,
                metrics_table(progress.best))
    return results


def release_compiled_programs() -> None:
    """Drops the process's in-memory compiled programs (the persistent compilation cache keeps them).

    jax's pmap memoises each train-epoch closure it compiles, and with it the run's task, constants and
    executables, for the life of the process: a process running many runs (a hyper-parameter search, an
    ablation grid, the test suite) grew by one run's programs each time until XLA's code mappings reached
    the kernel's limit (vm.max_map_count, 65,530) and a later compile crashed. Called when a run ends.
    """
    jax.clear_caches()


def diverged(what: str, epoch: int, checkpoints: RunCheckpoints) -> NonFiniteTrainingError:
    """The error for an epoch whose outcome is not finite, naming the checkpoint the workdir keeps."""
    kept = checkpoints.latest_epochs_done()
    return NonFiniteTrainingError(
        f"{what} at epoch {epoch}; nothing of it was saved, " +
        (f"kept the last good checkpoint {checkpoints.root}/latest/{kept} ({kept} epochs done)"
         if kept is not None else "and no checkpoint was saved before it"))


def train_epochs(task: Task, trainer: EpochTrainer, state: TrainState, checkpoints: RunCheckpoints,
                 config: ml_collections.ConfigDict, workdir: str, commit: str | None,
                 on_evaluation: EvaluationObserver | None = None,
                 bar: StepBar | None = None) -> tuple[RunProgress, report.RunWriter]:
    """Resumes from the newest intact checkpoint and trains until early stopping or num_epochs; returns the
    progress and the writer of the workdir's records.

    The task's selection view is evaluated every eval.every epochs (and at the last); patience counts
    those evaluations. Every epoch's loss, updated parameters and scores must be finite before anything
    of it is checkpointed; otherwise NonFiniteTrainingError. With eval.selection_only the other views
    (test) are never evaluated.
    """
    train_cfg = config.train
    spec = eval_spec(config.eval)
    report_views = () if spec.selection_only else task.report_views
    num_epochs, patience = int(train_cfg.num_epochs), int(train_cfg.patience)
    checkpoint_every = int(train_cfg.checkpoint_every)
    steps_per_epoch = trainer.steps_per_epoch
    progress = RunProgress()
    restored = checkpoints.restore_latest(state)
    if restored is not None:
        state, progress = restored
        checkpoints.discard_best_after(progress.epochs_done)
        checkpoints.check_best(state.params, progress.stopper.best_epoch)
        logger.info("resuming from %s/latest/%d: %d epochs done, best epoch %d", checkpoints.root,
                    progress.epochs_done, progress.epochs_done, progress.stopper.best_epoch)
        trained_at = progress.records[-1].get("commit") if progress.records else None
        if commit is not None and trained_at not in (None, commit):
            logger.warning("the epochs so far were trained at commit %s, this checkout is %s; results.json "
                           "lists each commit's epochs under trained_at", trained_at, commit)
    writer = report.RunWriter(workdir, progress.records, enabled=is_primary_host(),
                              tensorboard=bool(train_cfg.get("tensorboard", False)))
    for record in progress.records if on_evaluation is not None else ():  # a resumed run's observer sees all
        if task.select_on in record:
            on_evaluation(record["epoch"], record[task.select_on])

    score_state = jax.jit(task.score_state)

    def run_eval(state_to_score, view: str, epoch: int) -> dict[str, float]:
        try:
            return evaluate(task.score_fn, state_to_score, task.eval_sets[view], ks=spec.ks,
                            block_size=spec.batch_size, top_k_fn=task.top_k_fn, metrics=spec.metrics)
        except NonFiniteScoresError as error:
            raise diverged(f"the updated parameters score items non-finitely ({view}: {error})", epoch,
                           checkpoints) from None

    replicated_state = replicate(state)
    logger.info("training %s on %s: %d steps per epoch, batch %d over %d device(s), up to %d epochs; %s "
                "selects the model on %s every %d epoch(s)", task.model_name, task.dataset_name, steps_per_epoch,
                train_cfg.batch_size, jax.device_count(), num_epochs, task.select_on, spec.monitor, spec.every)
    while progress.epochs_done < num_epochs and not progress.stopper.should_stop(patience):
        epoch = progress.epochs_done
        # The params after this epoch are scored as they were trained: under this epoch's schedule.
        epoch_schedule = unreplicate(replicated_state.schedule)
        start = time.perf_counter()
        with bar.epoch(epoch, steps_per_epoch) if bar is not None else contextlib.nullcontext():
            new_state, losses, parts, params_finite = trainer.run_epoch(replicated_state, epoch)
        train_seconds = time.perf_counter() - start
        bad_step = first_non_finite(losses)
        if bad_step is not None:
            raise diverged(f"non-finite training loss {losses[bad_step]} at step {bad_step} of {steps_per_epoch}",
                           epoch, checkpoints)
        replicated_state = new_state
        params = unreplicate(replicated_state.params)
        if not params_finite:
            raise diverged("the loss was finite but the updated parameters hold NaN or inf", epoch, checkpoints)
        schedule_info = None if task.schedule is None else {
            "trained_with": task.schedule.to_host(epoch_schedule),
            "next": task.schedule.to_host(unreplicate(replicated_state.schedule))}
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "parts": parts, "train_seconds": train_seconds}
        stopper, best, improved = progress.stopper, progress.best, False
        if spec.due(epoch, num_epochs):
            start = time.perf_counter()
            state_to_score = score_state(params, task.consts_for(task.select_on), epoch_schedule)
            selected = run_eval(state_to_score, task.select_on, epoch)
            record["eval_seconds"] = time.perf_counter() - start
            record[task.select_on] = selected
            count_bad = schedule_info is None or not task.schedule.holds_early_stop(schedule_info["next"])
            stopper = progress.stopper.update(spec.selection_value(selected), epoch, count_bad=count_bad,
                                              later_ties=spec.later_ties)
            improved = stopper.improved_at(epoch)
            record["best"] = improved
        if schedule_info is not None:
            record["schedule"] = schedule_info
        if commit is not None:
            record["commit"] = commit
        # The line goes out once the selection view is scored; the report views and the best checkpoint follow.
        summary = epoch_summary(parts, task.schedule, schedule_info)
        folded = len(parts) > 3 or task.schedule is not None  # a long line of loss parts goes on its own line
        logger.info("epoch %4d | loss %.4f | %s | %.2fs train%s%s%s | %s%s", epoch, record["loss"],
                    format_metrics(task.select_on, record.get(task.select_on, {}), spec.headline())
                    if task.select_on in record else "not evaluated", train_seconds,
                    f" {record['eval_seconds']:.2f}s eval" if "eval_seconds" in record else "",
                    " *" if improved else "", "" if folded else summary,
                    time_left(progress.records + (record,), num_epochs),
                    "\n           " + summary.removeprefix(" | ") if folded and summary else "")
        if improved:
            best = {task.select_on: selected}
            for view in report_views:
                view_state = state_to_score if view not in task.view_consts else \
                    score_state(params, task.view_consts[view], epoch_schedule)
                best[view] = run_eval(view_state, view, epoch)
            best_info = dict(best)
            if schedule_info is not None:
                best_info["schedule"] = schedule_info["trained_with"]
            checkpoints.save_best(epoch, params, best_info)
        writer.epoch(record)
        progress = RunProgress(epochs_done=epoch + 1, stopper=stopper, best=best,
                               records=progress.records + (record,))
        finished = progress.epochs_done == num_epochs or stopper.should_stop(patience)
        if finished or progress.epochs_done % checkpoint_every == 0:
            checkpoints.save_latest(unreplicate(replicated_state), progress)
        if stopper.should_stop(patience):
            logger.info("early stop at epoch %d: no %s improvement for %d evaluations", epoch, spec.monitor,
                        stopper.bad_epochs)
        if on_evaluation is not None and task.select_on in record:
            checkpoints.wait()
            on_evaluation(epoch, record[task.select_on])
    return progress, writer


def time_left(records: tuple[dict[str, Any], ...], num_epochs: int) -> str:
    """'12/100 epochs, at most 3m20s left': the epochs left at the median epoch time so far (after the first,
    which compiles), an upper bound since early stopping may end the run sooner."""
    seconds = [r["train_seconds"] + r.get("eval_seconds", 0.0) for r in records]
    per_epoch = float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
    left = int(round(per_epoch * (num_epochs - len(records))))
    clock = f"{left // 3600}h{left // 60 % 60:02d}m" if left >= 3600 else f"{left // 60}m{left % 60:02d}s"
    return f"{len(records)}/{num_epochs} epochs, at most {clock} left"


def metrics_table(best: dict[str, dict[str, float]]) -> str:
    """Every metric of the best epoch, one row each, a column per evaluation view (valid, test, ...)."""
    views = [view for view in best if best[view]]
    if not views:
        return "no evaluation"
    names = sorted({name for view in views for name in best[view]},
                   key=lambda name: (name.split("@")[0], int(name.split("@")[1]) if "@" in name else 0))
    width = max(len(name) for name in names)
    lines = [" " * width + "".join(f"  {view:>8}" for view in views)]
    lines += [name.ljust(width) + "".join(f"  {best[view][name]:8.4f}" if name in best[view] else "  " + " " * 8
                                          for view in views) for name in names]
    return "\n".join(lines)


def epoch_summary(parts: dict[str, float], schedule: EpochSchedule | None,
                  schedule_info: dict[str, Any] | None) -> str:
    """' | part value ...' for the log line; with a schedule also what the schedule says of this epoch."""
    text = "".join(f" {name} {value:.4g}" for name, value in parts.items())
    if schedule is not None and schedule_info is not None:
        described = schedule.describe(schedule_info["trained_with"], schedule_info["next"])
        text += f" | {described}" if described else ""
    return " |" + text if text else ""


def summarise(task: Task, progress: RunProgress, monitor: str, seed: int,
              metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The results record: metrics at the best-valid epoch and steady-state seconds per epoch.

    `commit` (from `metadata`) is the checkout that wrote the record; `trained_at` lists which commit
    trained which epochs, so a finished or resumed run reopened at a later commit keeps its provenance.
    """
    train_seconds = [r["train_seconds"] for r in progress.records]
    eval_seconds = [r["eval_seconds"] for r in progress.records if "eval_seconds" in r]
    trained_at = commit_segments(progress.records)
    # The first epoch includes compilation; time the steady state when there is one.
    return {
        "model": task.model_name,
        "dataset": task.dataset_name,
        "best_epoch": progress.stopper.best_epoch,
        "epochs_run": progress.epochs_done,
        "monitor": monitor,
        "selected_on": task.select_on,
        **{view: progress.best.get(view, {}) for view in task.eval_sets},
        "seconds_per_epoch": float(np.median(train_seconds[1:] or train_seconds)),
        "seconds_per_eval": float(np.median(eval_seconds[1:] or eval_seconds)),
        "first_epoch_seconds": train_seconds[0] if train_seconds else float("nan"),
        "seed": seed,
        **(metadata or {}),
        **({"trained_at": trained_at} if trained_at else {}),
    }


def commit_segments(records: tuple[dict, ...]) -> list[dict[str, Any]]:
    """[{commit, epochs: [first, last]}, ...]: consecutive epochs trained at one commit, in order."""
    segments: list[dict[str, Any]] = []
    for record in records:
        commit = record.get("commit", "unrecorded")
        if segments and segments[-1]["commit"] == commit:
            segments[-1]["epochs"][1] = record["epoch"]
        else:
            segments.append({"commit": commit, "epochs": [record["epoch"], record["epoch"]]})
    return segments if any(s["commit"] != "unrecorded" for s in segments) else []
