"""train_and_evaluate: config -> dataset -> protocol task -> shared trainer -> workdir."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from typing import Any, Callable

import jax
import ml_collections

from mmjax.data import InteractionDataset, load_mmrec_dir, make_synthetic
from mmjax.errors import ConfigError
from mmjax.train.loop import fit
from mmjax.train.task import Task
from mmjax.train.topk import graph_topk_task

logger = logging.getLogger(__name__)

PROTOCOLS: dict[str, Callable[[ml_collections.ConfigDict, InteractionDataset], Task]] = {
    "graph": graph_topk_task,
}


def load_dataset(data_cfg: ml_collections.ConfigDict) -> InteractionDataset:
    """The MMRec directory at data.dir, or the synthetic generator when data.dir is None."""
    if data_cfg.dir:
        return load_mmrec_dir(data_cfg.dir)
    return make_synthetic(**data_cfg.synthetic.to_dict())


def git_commit() -> str:
    """The checkout's commit (with '+dirty' for local changes), or 'unknown' outside git."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs one training job as configured; writes metrics.jsonl, results.json, curves.png."""
    if config.task not in PROTOCOLS:
        raise ConfigError(f"task: expected one of {sorted(PROTOCOLS)}, got {config.task!r}")
    dataset = load_dataset(config.data)
    logger.info("jax %s on %s", jax.__version__, ", ".join(str(d) for d in jax.devices()))
    task = PROTOCOLS[config.task](config, dataset)
    metadata = {
        "dataset_source": dataset.source,
        "dataset_checksum": dataset.checksum,
        "num_users": dataset.num_users,
        "num_items": dataset.num_items,
        "command": " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv),
        "commit": git_commit(),
        "platform": jax.default_backend(),
    }
    return fit(task, config, workdir, metadata)
