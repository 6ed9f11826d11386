"""The three modes of a run: train (config -> dataset -> task -> shared trainer), eval and recommend.

eval and recommend rebuild the same task from the same config and load the best-valid checkpoint of
the workdir, so they see exactly the model the training run selected.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np

from mmjax.data import InteractionDataset, load_mmrec_dir, make_synthetic
from mmjax.errors import ConfigError, MmjaxError
from mmjax.eval import evaluate, recommend_top_k
from mmjax.eval.recommend import check_users
from mmjax.train.checkpoint import EVALUATION_CHANGES, RunCheckpoints, run_identity
from mmjax.train.coldstart import coldstart_task
from mmjax.train.loop import EvaluationObserver, eval_spec, fit, format_metrics
from mmjax.train.missing import with_missing_modality
from mmjax.train.parallel import initialize_distributed, is_primary_host
from mmjax.train.pretrained import run_inputs, with_pretrained_items
from mmjax.train.schedule import EpochSchedule
from mmjax.train.task import Task
from mmjax.train.sequential import sequential_task
from mmjax.train.topk import graph_topk_task

logger = logging.getLogger(__name__)

PROTOCOLS: dict[str, Callable[[ml_collections.ConfigDict, InteractionDataset], Task]] = {
    "graph": graph_topk_task,
    "sequential": sequential_task,
    "coldstart": coldstart_task,
}


def load_dataset(data_cfg: ml_collections.ConfigDict) -> InteractionDataset:
    """The MMRec directory at data.dir, or the synthetic generator when data.dir is None."""
    if data_cfg.dir:
        return load_mmrec_dir(data_cfg.dir, split=data_cfg.get("split", "auto"),
                              split_ratios=tuple(data_cfg.get("split_ratios", (0.8, 0.1, 0.1))),
                              split_seed=int(data_cfg.get("split_seed", 0)), kcore=data_cfg.get("kcore", 0),
                              item_category_field=str(data_cfg.get("item_category_field", "auto")))
    return make_synthetic(**data_cfg.synthetic.to_dict())


def git_commit() -> str:
    """The checkout's commit, with '+dirty' when files other than experiment results (outputs) are changed
    or not yet committed; 'unknown' outside git."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ".", ":(exclude)experiments/results"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def prepare(config: ml_collections.ConfigDict) -> tuple[InteractionDataset, Task]:
    """Joins a multi-host job if asked, loads the data and builds the protocol's task."""
    if config.task not in PROTOCOLS:
        raise ConfigError(f"task: expected one of {sorted(PROTOCOLS)}, got {config.task!r}")
    initialize_distributed(config.train.distributed)
    dataset = with_pretrained_items(load_dataset(config.data), config.model, restore_best_state)
    logger.info("jax %s on %s", jax.__version__, ", ".join(str(d) for d in jax.devices()))
    return dataset, with_missing_modality(PROTOCOLS[config.task](config, dataset), config.eval, dataset.features)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_evaluation: EvaluationObserver | None = None) -> dict[str, Any]:
    """Trains (resuming from the workdir's checkpoints if any); writes metrics.jsonl, results.json, curves.png.
    `on_evaluation` goes to loop.fit (hyper-parameter search follows the valid metric with it)."""
    dataset, task = prepare(config)
    metadata = {
        "dataset_source": dataset.source,
        "dataset_checksum": dataset.checksum,
        "num_users": dataset.num_users,
        "num_items": dataset.num_items,
        "command": typed_command(),
        "commit": git_commit(),
        "platform": jax.default_backend(),
    }
    if run_inputs(dataset):
        metadata["inputs"] = run_inputs(dataset)
    results = fit(task, config, workdir, metadata, on_evaluation)
    write_id_maps(dataset, workdir)
    return results


def write_id_maps(dataset: InteractionDataset, workdir: str) -> None:
    """<workdir>/user_ids.tsv and item_ids.tsv (internal id, the dataset's own id) where the dataset has them,
    so a run's outputs can be read back to the original ids without the data directory."""
    for kind, names in (("user", dataset.user_names), ("item", dataset.item_names)):
        if names is not None and is_primary_host():
            with open(os.path.join(workdir, f"{kind}_ids.tsv"), "w") as f:
                f.write(f"{kind}_id\t{kind}\n" + "".join(f"{i}\t{name}\n" for i, name in enumerate(names)))


def typed_command() -> str:
    """The command line as the user typed it ('python -m mmjax.main --config=...'), shell-quoted."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return " ".join(shlex.quote(a) for a in argv)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a finished run was trained with, from its results.json."""
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        raise MmjaxError(f"{path} not found: expected a finished training run")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f)["config"])


def restore_best_state(workdir: str) -> tuple[ml_collections.ConfigDict, InteractionDataset, Any, dict]:
    """(config, dataset, score state, checkpoint info) of a finished run's best-valid checkpoint: what the run
    scores with, as eval mode restores it (the hand-over of train/pretrained.py)."""
    config = load_run_config(workdir)
    dataset, task, params, info = load_best(config, workdir)
    return config, dataset, jax.device_get(best_score_state(task, params, info)), info


def load_best(config: ml_collections.ConfigDict, workdir: str) -> tuple[InteractionDataset, Task, Any, dict]:
    """(dataset, task, best-valid params, their checkpoint info) of a trained workdir.

    MmjaxError unless the workdir's checkpoints were trained with this config (fields in
    EVALUATION_CHANGES aside) on this dataset: the workdir is read, never written, except that a corrupt
    best checkpoint is moved aside.
    """
    with RunCheckpoints(workdir, read_only=True) as checkpoints:
        dataset, task = prepare(config)
        checkpoints.check_trained_with(run_identity(config.to_dict(), dataset.checksum, ignored=EVALUATION_CHANGES,
                                                    inputs=run_inputs(dataset)))
        params, info = checkpoints.restore_best(task.init_params(jax.random.PRNGKey(0)))
    return dataset, task, params, info


def best_score_state(task: Task, params: Any, info: dict[str, Any], view: str | None = None) -> Any:
    """What the task scores `view` (None: the training consts) with for the best checkpoint: its params
    under the schedule they trained with."""
    schedule = None
    if task.schedule is not None:
        schedule = EpochSchedule.from_host(info.get("schedule", {}), task.initial_schedule())
    consts = task.consts if view is None else task.consts_for(view)
    return jax.jit(task.score_state)(params, consts, schedule)


def evaluate_best(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Recomputes every evaluation view's metrics (valid, test, ...) of the best checkpoint; writes
    <workdir>/eval.json."""
    spec = eval_spec(config.eval)
    _, task, params, info = load_best(config, workdir)
    state = best_score_state(task, params, info)
    out = {"best_epoch": info["epoch"]}
    for view, eval_set in task.eval_sets.items():
        view_state = state if view not in task.view_consts else best_score_state(task, params, info, view)
        out[view] = evaluate(task.score_fn, view_state, eval_set, ks=spec.ks, block_size=spec.batch_size,
                             top_k_fn=task.top_k_fn, metrics=spec.metrics)
    path = os.path.join(workdir, "eval.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    logger.info("best epoch %d | %s; wrote %s", out["best_epoch"],
                " | ".join(format_metrics(view, out[view], spec.headline()) for view in task.eval_sets), path)
    return out


USER_ID = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only ('²' is a digit to str.isdigit), within int64


def parse_users(spec: str | None) -> np.ndarray | None:
    """User ids from '--users': comma-separated ids, or a file of ids (comma or line separated); None = all."""
    if not spec:
        return None
    text, source = spec, "--users"
    if os.path.isfile(spec):
        try:
            with open(spec) as f:
                text, source = f.read(), spec
        except (OSError, UnicodeDecodeError) as error:
            raise MmjaxError(f"--users {spec}: cannot read the file ({error})") from None
    tokens = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    bad = next((t for t in tokens if not USER_ID.fullmatch(t)), None)
    if bad is not None and source == "--users" and "," not in spec:
        raise MmjaxError(f"--users {spec}: no such file, and not a comma-separated list of integer user ids")
    if bad is not None:
        raise MmjaxError(f"{source}: expected integer user ids separated by commas, got {bad[:40]!r}")
    if not tokens:
        raise MmjaxError(f"{source}: expected integer user ids separated by commas, got none")
    return np.array([int(t) for t in tokens], dtype=np.int64)


def recommend(config: ml_collections.ConfigDict, workdir: str, users: Sequence[int] | None = None) -> str:
    """Writes <workdir>/recommendations.csv: user_id, rank, item_id, score for the top recommend.k items,
    and the dataset's own ids in columns user and item where it has them (id maps, remapped sparse ids).

    Items in the user's `recommend.exclude_splits` interactions are never recommended; `users` defaults
    to every user.
    """
    unknown = sorted(set(config.recommend.exclude_splits) - {"train", "valid", "test"})
    if unknown:
        raise ConfigError(f"recommend.exclude_splits: expected names among train, valid, test; got {unknown}")
    dataset, task, params, info = load_best(config, workdir)
    users = np.arange(dataset.num_users) if users is None else check_users(users, dataset.num_users)
    indptr, indices = dataset.interaction_csr(tuple(config.recommend.exclude_splits))
    state = best_score_state(task, params, info)
    inputs = None if task.recommend_inputs is None else task.recommend_inputs(users)
    items, scores = recommend_top_k(task.score_fn, state, users, indptr, indices, dataset.num_items,
                                    int(config.recommend.k), block_size=int(config.eval.batch_size),
                                    top_k_fn=task.top_k_fn, inputs=inputs)
    path = os.path.join(workdir, "recommendations.csv")
    user_names, item_names = dataset.user_names, dataset.item_names
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "rank", "item_id", "score"] + ["user"] * (user_names is not None)
                        + ["item"] * (item_names is not None))
        for user, user_items, user_scores in zip(users, items, scores):
            for rank, (item, score) in enumerate(zip(user_items, user_scores), start=1):
                if item >= 0:
                    writer.writerow([int(user), rank, int(item), f"{float(score):.6g}"]
                                    + ([user_names[user]] if user_names is not None else [])
                                    + ([item_names[item]] if item_names is not None else []))
    k, short = int(config.recommend.k), int((items < 0).any(axis=1).sum())
    logger.info("wrote %d rows, the top %d items of %d users (best epoch %d), to %s%s", int((items >= 0).sum()), k,
                len(users), info["epoch"], path,
                f"; {short} of them have fewer than {k} items outside their "
                f"{'/'.join(config.recommend.exclude_splits)} interactions and get only those" if short else "")
    return path
