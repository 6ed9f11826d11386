"""Seconds per training epoch and per full-ranking evaluation pass, as `mmjax.main` runs them; prints JSON.

Each model is built from its config file on the same dataset (default ../shared/data/baby) and timed in
this one process: one epoch and one evaluation pass to compile, then the median of --epochs epochs (host
batch sampling, transfer and the pmapped whole-epoch scan) and of as many valid evaluation passes. Ratios
are to the first model of --models, measured in the same run.

  python experiments/bench_epoch.py                                         # LightGCN on baby
  python experiments/bench_epoch.py --models lightgcn,lightgcn:segment_sum  # the two propagation paths
  python experiments/bench_epoch.py --data ../shared/data/tiktok --models lightgcn,bpr --out results/x.json
  # MAGNET in stage 1 (dense routing) and with top-k routing from epoch 0, against LightGCN:
  python experiments/bench_epoch.py --data ../shared/data/tiktok \
      --models lightgcn,magnet,magnet@model.schedule.mode=specialise
  # the cost of the progress bar's per-step host callback
  python experiments/bench_epoch.py --models lightgcn,lightgcn@train.progress=bar,lightgcn,lightgcn@train.progress=bar
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from mmjax.config_files import load_config_file, parse_value, with_overrides
from mmjax.eval import evaluate
from mmjax.train.loop import EpochTrainer, check_monitor
from mmjax.train.parallel import replicate, unreplicate
from mmjax.train.progress import StepBar
from mmjax.train.train import git_commit, prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BABY = os.path.join(os.path.dirname(ROOT), "shared", "data", "baby")
# MMRec's PyTorch LightGCN on the same machine kind and split (shared/anchors.md), for context only.
MMREC_SECONDS = {("lightgcn", "baby"): {"train_epoch": 7.0, "eval_pass": 3.1},
                 ("lightgcn", "tiktok"): {"train_epoch": 1.0, "eval_pass": 0.55}}


def load_config(spec: str, data_dir: str | None):
    """'name[:propagation][@field=value@...]' -> configs/<name>.py's config on `data_dir`, overridden."""
    model, *overrides = spec.split("@")
    name, _, propagation = model.partition(":")
    config = load_config_file(os.path.join(ROOT, "configs", f"{name}.py"))
    config.data.dir = data_dir
    if propagation:
        config.model.propagation = propagation
    return with_overrides(config, {field: parse_value(value) for field, _, value in
                                   (override.partition("=") for override in overrides)})


def time_model(spec: str, data_dir: str | None, epochs: int) -> dict:
    config = load_config(spec, data_dir)
    dataset, task = prepare(config)
    ks, _ = check_monitor(config.eval)
    # '@train.progress=bar': each step reports to the host as under the progress bar (counted, not drawn)
    on_step = StepBar().on_step if config.train.get("progress") == "bar" else None
    trainer = EpochTrainer.build(task, config.train, on_step)
    state = replicate(trainer.initial_state(int(config.train.seed)))
    score_state = jax.jit(task.score_state)

    def eval_pass(state) -> float:
        start = time.perf_counter()
        scoring = score_state(unreplicate(state.params), task.consts, unreplicate(state.schedule))
        evaluate(task.score_fn, scoring, task.eval_sets["valid"], ks=ks, block_size=int(config.eval.batch_size),
                 top_k_fn=task.top_k_fn)
        return time.perf_counter() - start

    train_seconds, eval_seconds = [], []
    for epoch in range(epochs + 1):  # epoch 0 compiles
        start = time.perf_counter()
        state, losses, _, _ = trainer.run_epoch(state, epoch)
        train_seconds.append(time.perf_counter() - start)
        eval_seconds.append(eval_pass(state))
        if not np.isfinite(losses).all():
            raise FloatingPointError(f"{spec}: non-finite loss at epoch {epoch}")
    return {"model": spec, "propagation": config.model.get("propagation"), "dataset": dataset.name,
            "dataset_checksum": dataset.checksum, "steps_per_epoch": trainer.steps_per_epoch,
            "batch_size": int(config.train.batch_size), "first_epoch_seconds": round(train_seconds[0], 3),
            "first_eval_seconds": round(eval_seconds[0], 3),
            "seconds_per_epoch": round(float(np.median(train_seconds[1:])), 4),
            "seconds_per_eval": round(float(np.median(eval_seconds[1:])), 4),
            "epoch_seconds": [round(s, 4) for s in train_seconds[1:]],
            "eval_seconds": [round(s, 4) for s in eval_seconds[1:]],
            "eval_block_users": int(config.eval.batch_size),
            "mmrec_seconds": MMREC_SECONDS.get((spec.partition(":")[0], dataset.name))}


def emit_benchmark(name: str, invocation: str, args: argparse.Namespace, **payload) -> None:
    """Prints (and with args.out writes) a benchmark's JSON: its exact command (`invocation` then the
    parsed flags), commit and machine first."""
    result = {"benchmark": name, "command": " ".join(
        [invocation] + [f"--{k}={v}" for k, v in vars(args).items() if v is not None]),
        "commit": git_commit(), "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(), **payload}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=BABY, help="MMRec directory; 'synthetic' for the built-in data")
    parser.add_argument("--models", default="lightgcn", help="comma-separated configs/<name>[:propagation]")
    parser.add_argument("--epochs", type=int, default=7, help="timed epochs (and eval passes) per model")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    data_dir = None if args.data == "synthetic" else args.data
    runs = [time_model(spec, data_dir, args.epochs) for spec in args.models.split(",")]
    first = runs[0]
    for run in runs:
        run["epoch_ratio_to_first"] = round(run["seconds_per_epoch"] / first["seconds_per_epoch"], 3)
        run["eval_ratio_to_first"] = round(run["seconds_per_eval"] / first["seconds_per_eval"], 3)
    emit_benchmark("epoch_and_eval_seconds", "python experiments/bench_epoch.py", args, runs=runs)


if __name__ == "__main__":
    main()
