"""Evaluation with a modality missing (eval.drop_modality, eval.drop_fraction, eval.drop_seed), any protocol.

For each reported view (test, and the protocol's others) a seeded share of the items that view ranks (its
candidates; every item when it has none) loses the modality: those feature rows are zeroed and flagged in
the dataset's missing_features masks, and the model's constants are rebuilt from these features
(Task.consts_with), so kNN item graphs and normalised tables are what a deployment without them would
build. The trained parameters are scored unchanged, in an extra view '<view>_no_<modality>_<percent>pct'.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import ml_collections
import numpy as np

from mmjax.errors import ConfigError
from mmjax.train.task import Task


def missing_view_name(view: str, modality: str, fraction: float) -> str:
    """'test_no_image_50pct' for (test, image, 0.5)."""
    return f"{view}_no_{modality}_{fraction * 100:g}pct"


def dropped_items(candidates: np.ndarray | None, num_items: int, fraction: float, seed: int) -> np.ndarray:
    """round(fraction * |candidates|) of the candidate items (every item for None), drawn with `seed`; sorted."""
    pool = np.arange(num_items) if candidates is None else np.unique(candidates)
    count = int(round(fraction * len(pool)))
    return np.sort(np.random.default_rng(seed).choice(pool, size=count, replace=False))


def check_drop(eval_cfg: ml_collections.ConfigDict, modalities: tuple[str, ...]) -> tuple[str, float, int] | None:
    """(modality, fraction, seed) of the eval config's drop fields, None when no modality is dropped;
    ConfigError for a modality the data lacks or a fraction outside [0, 1]."""
    modality = eval_cfg.get("drop_modality", None)
    fraction, seed = eval_cfg.get("drop_fraction", 1.0), eval_cfg.get("drop_seed", 0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= float(fraction) <= 1.0:
        raise ConfigError(f"eval.drop_fraction: expected a share of items in [0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"eval.drop_seed: expected an int, got {seed!r}")
    if modality is None:
        return None
    if modality not in modalities:
        raise ConfigError(f"eval.drop_modality: {modality!r} is not a modality of the data, which has "
                          f"{list(modalities) or 'no feature files'}")
    return str(modality), float(fraction), seed


def with_missing_modality(task: Task, eval_cfg: ml_collections.ConfigDict,
                          features: Mapping[str, np.ndarray]) -> Task:
    """`task` with one missing-modality view beside each reported view (none when no modality is dropped)."""
    drop = check_drop(eval_cfg, tuple(sorted(features)))
    if drop is None:
        return task
    modality, fraction, seed = drop
    if task.consts_with is None:
        raise ConfigError(f"eval.drop_modality: the {task.model_name} task cannot rebuild its inputs with other "
                          "features")
    eval_sets, view_consts = dict(task.eval_sets), dict(task.view_consts)
    for view in task.report_views:
        eval_set = task.eval_sets[view]
        items = dropped_items(eval_set.candidates, eval_set.num_items, fraction, seed)
        missing = np.zeros(eval_set.num_items, bool)
        missing[items] = True
        dropped = {name: np.where(missing[:, None], 0.0, array).astype(np.float32) if name == modality else array
                   for name, array in features.items()}
        name = missing_view_name(view, modality, fraction)
        eval_sets[name] = eval_set
        view_consts[name] = task.consts_with(dropped, {modality: missing})
    return dataclasses.replace(task, eval_sets=eval_sets, view_consts=view_consts)
