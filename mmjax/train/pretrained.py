"""The hand-over between two training phases: a finished graph run's best-valid item vectors as an input.

EGRA's phase 2 (`model.pretrained_workdir=PATH`) builds its item-item graph from the final item vectors of
a phase-1 run (any registered graph model; MGCN by default). They are restored here, through the shared
checkpoint code, and attached to the dataset (`InteractionDataset.pretrained_items`), so the model reads
them as an input and never opens a file. Their provenance (workdir, best epoch, SHA-256 of the vectors)
enters results.json and the run identity, so a phase 2 resumed against a retrained phase 1 is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Callable

import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.data.pretrained import PretrainedItems
from mmjax.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


Restore = Callable[[str], tuple[ml_collections.ConfigDict, InteractionDataset, Any, dict]]


def load_pretrained_items(workdir: str, dataset: InteractionDataset, restore: Restore,
                          expected_dim: int | None = None) -> PretrainedItems:
    """The best-valid item vectors of the finished graph run in `workdir`, checked against `dataset`.

    `restore(workdir)` -> (its config, its dataset, its best checkpoint's score state, checkpoint info)
    (train.restore_best_state). One-line errors (MmjaxError) for a missing or unfinished run, a run of another
    protocol or dataset, a model whose scoring state is not (user vectors, item vectors), or vectors of
    another item count or dimension than expected.
    """
    field = "model.pretrained_workdir"
    if not os.path.isdir(workdir):
        raise ConfigError(f"{field}: {workdir} is not a directory (expected a finished phase-1 run)")
    results = os.path.join(workdir, "results.json")
    if not os.path.exists(results):
        raise ConfigError(f"{field}: {workdir} has no results.json: its training has not finished")
    with open(results) as f:
        task = json.load(f).get("config", {}).get("task", "graph")
    if task != "graph":
        raise ConfigError(f"{field}: {workdir} is a {task!r} run; the hand-over needs a graph top-K run")
    config, phase1_dataset, state, info = restore(workdir)
    if phase1_dataset.checksum != dataset.checksum:
        raise DataError(f"{field}: {workdir} was trained on dataset {phase1_dataset.name!r} (sha256 "
                        f"{phase1_dataset.checksum[:12]}), this run reads {dataset.name!r} (sha256 "
                        f"{dataset.checksum[:12]})")
    if not (isinstance(state, tuple) and len(state) == 2 and all(np.ndim(part) == 2 for part in state)):
        raise ConfigError(f"{field}: {workdir} ({config.model.name}) does not score by user and item vectors, "
                          "so it has no item matrix to hand over")
    vectors = np.asarray(state[1], np.float32)
    if vectors.shape[0] != dataset.num_items:
        raise DataError(f"{field}: {workdir} has {vectors.shape[0]} item vectors, the dataset {dataset.num_items} "
                        "items")
    if expected_dim is not None and vectors.shape[1] != expected_dim:
        raise ConfigError(f"{field}: {workdir} has item vectors of dimension {vectors.shape[1]}, "
                          f"model.pretrained_dim expects {expected_dim}")
    items = PretrainedItems(vectors=vectors, workdir=os.path.abspath(workdir), model=str(config.model.name),
                            best_epoch=int(info["epoch"]))
    logger.info("pretrained items: %d x %d from %s (%s, best epoch %d, sha256 %s)", *vectors.shape,
                items.workdir, items.model, items.best_epoch, items.digest[:12])
    return items


def with_pretrained_items(dataset: InteractionDataset, model_cfg: ml_collections.ConfigDict,
                          restore: Restore) -> InteractionDataset:
    """`dataset` with the item vectors of model.pretrained_workdir attached, or as it is when none is named."""
    workdir = model_cfg.get("pretrained_workdir")
    if not workdir:
        return dataset
    expected = model_cfg.get("pretrained_dim")
    items = load_pretrained_items(str(workdir), dataset, restore, None if expected is None else int(expected))
    return dataclasses.replace(dataset, pretrained_items=items)


def run_inputs(dataset: InteractionDataset) -> dict:
    """What a run reads besides its config and data, for its identity and results.json ({} for most runs)."""
    return {} if dataset.pretrained_items is None else {"pretrained_items": dataset.pretrained_items.identity()}
