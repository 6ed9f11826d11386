"""The shared trainer: jitted whole-epoch scans, per-epoch evaluation, early stopping, reports."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mmjax.errors import ConfigError
from mmjax.eval import evaluate
from mmjax.train import report
from mmjax.train.state import EarlyStopping, TrainState
from mmjax.train.task import Task

logger = logging.getLogger(__name__)


def learning_rate_schedule(train_cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """lr * decay ** (epoch / decay_every), stepped once per epoch (MMRec's LambdaLR)."""
    base, decay, every = float(train_cfg.learning_rate), float(train_cfg.lr_decay), float(train_cfg.lr_decay_every)
    if base <= 0 or not math.isfinite(base):
        raise ConfigError(f"train.learning_rate: expected a finite value > 0, got {base}")
    if not 0 < decay <= 1 or every <= 0:
        raise ConfigError(f"train.lr_decay / lr_decay_every: expected 0 < decay <= 1 and every > 0, "
                          f"got {decay} / {every}")
    return lambda step: base * decay ** ((step // steps_per_epoch) / every)


def make_train_epoch(task: Task, optimizer: optax.GradientTransformation) -> Callable:
    """A jitted function (state, consts, batches) -> (state, per-step losses) scanning one epoch."""

    def train_step(carry, batch):
        state, consts = carry
        rng, step_rng = jax.random.split(state.rng)
        (loss, _), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(state.params, consts, batch, step_rng)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1, rng=rng)
        return (new_state, consts), loss

    def train_epoch(state: TrainState, consts: Any, batches: dict[str, jax.Array]):
        (state, _), losses = jax.lax.scan(train_step, (state, consts), batches)
        return state, losses

    return jax.jit(train_epoch, donate_argnums=0)


def validate_train_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first out-of-range training field."""
    checks = [
        ("train.num_epochs", cfg.num_epochs, cfg.num_epochs >= 1, ">= 1"),
        ("train.batch_size", cfg.batch_size, cfg.batch_size >= 1, ">= 1"),
        ("train.patience", cfg.patience, cfg.patience >= 0, ">= 0"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{name}: expected {expected}, got {value}")


def fit(task: Task, config: ml_collections.ConfigDict, workdir: str,
        metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains until early stopping or num_epochs; returns (and writes) the results record.

    `metadata` (dataset checksum, command, ...) is merged into results.json as it is.
    """
    train_cfg, eval_cfg = config.train, config.eval
    validate_train_config(train_cfg)
    ks = tuple(int(k) for k in eval_cfg.ks)
    monitor = str(eval_cfg.monitor)
    if monitor.split("@")[0] not in ("recall", "ndcg", "precision", "map") or \
            "@" not in monitor or int(monitor.split("@")[1]) not in ks:
        raise ConfigError(f"eval.monitor: expected '<recall|ndcg|precision|map>@k' with k in eval.ks {ks}, "
                          f"got {monitor!r}")
    prepared = {0: task.epoch_batches(0)}  # epoch 0's batches also tell the steps per epoch
    steps_per_epoch = int(next(iter(prepared[0].values())).shape[0])
    optimizer = optax.adam(learning_rate_schedule(train_cfg, steps_per_epoch))
    params_rng, train_rng = jax.random.split(jax.random.PRNGKey(int(train_cfg.seed)))
    params = task.init_params(params_rng)
    state = TrainState(params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32),
                       rng=train_rng)
    train_epoch = make_train_epoch(task, optimizer)
    score_state = jax.jit(task.score_state)

    def run_eval(params, split: str) -> dict[str, float]:
        return evaluate(task.score_fn, score_state(params, task.consts), task.eval_sets[split], ks=ks,
                        block_size=int(eval_cfg.batch_size))

    writer = report.RunWriter(workdir)
    stopper = EarlyStopping()
    best_valid, best_test = {}, {}
    train_seconds, eval_seconds = [], []
    logger.info("training %s on %s: %d steps per epoch, batch %d, up to %d epochs",
                task.model_name, task.dataset_name, steps_per_epoch, train_cfg.batch_size, train_cfg.num_epochs)
    for epoch in range(int(train_cfg.num_epochs)):
        start = time.perf_counter()
        host_batches = prepared.pop(epoch) if epoch in prepared else task.epoch_batches(epoch)
        batches = jax.tree_util.tree_map(jnp.asarray, host_batches)
        state, losses = train_epoch(state, task.consts, batches)
        mean_loss = float(jnp.mean(losses))
        train_seconds.append(time.perf_counter() - start)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"non-finite training loss {mean_loss} at epoch {epoch}")
        start = time.perf_counter()
        valid = run_eval(state.params, "valid")
        eval_seconds.append(time.perf_counter() - start)
        stopper = stopper.update(valid[monitor], epoch)
        if stopper.improved_at(epoch):
            best_valid, best_test = valid, run_eval(state.params, "test")
        record = {"epoch": epoch, "loss": mean_loss, "train_seconds": train_seconds[-1],
                  "eval_seconds": eval_seconds[-1], "valid": valid, "best": stopper.improved_at(epoch)}
        writer.epoch(record)
        logger.info("epoch %4d | loss %.4f | valid recall@20 %.4f ndcg@20 %.4f | %.2fs train %.2fs eval%s",
                    epoch, mean_loss, valid.get("recall@20", float("nan")), valid.get("ndcg@20", float("nan")),
                    train_seconds[-1], eval_seconds[-1], " *" if record["best"] else "")
        if stopper.should_stop(int(train_cfg.patience)):
            logger.info("early stop at epoch %d: no %s improvement for %d epochs", epoch, monitor,
                        stopper.bad_epochs)
            break
    # The first epoch includes compilation; time the steady state when there is one.
    steady_train = train_seconds[1:] or train_seconds
    steady_eval = eval_seconds[1:] or eval_seconds
    results = {
        "model": task.model_name,
        "dataset": task.dataset_name,
        "best_epoch": stopper.best_epoch,
        "epochs_run": len(train_seconds),
        "monitor": monitor,
        "valid": best_valid,
        "test": best_test,
        "seconds_per_epoch": float(np.median(steady_train)),
        "seconds_per_eval": float(np.median(steady_eval)),
        "first_epoch_seconds": train_seconds[0],
        "seed": int(train_cfg.seed),
        **(metadata or {}),
    }
    writer.results(results, config)
    logger.info("best epoch %d | test recall@20 %.4f ndcg@20 %.4f | %.2f s per epoch",
                stopper.best_epoch, best_test.get("recall@20", float("nan")),
                best_test.get("ndcg@20", float("nan")), results["seconds_per_epoch"])
    return results
