"""The item cold-start protocol (specs/coldstart-protocol.md): rank items that never had a train interaction.

The dataset is re-split (data/cold.py): a seeded share of items is cold, each cold item's interactions go
to valid or to test, warm items keep their own rows. Any graph model trains on the warm train pairs with
BPR (one negative per pair, from every item by default, as the reference code draws them; the
'train_items' pool keeps cold items out of training entirely). Views: 'valid' and 'test' rank the cold
items only (both halves are candidates in both, as in the reference code) against the users' cold
interactions; 'test_warm' ranks the warm items against the warm test rows, 'test_hybrid' every item
against all test rows. Train items are masked everywhere.
"""

from __future__ import annotations

import dataclasses
import logging

import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.data.cold import ColdSplit, cold_item_split
from mmjax.errors import DataError
from mmjax.eval import EvalSet, build_eval_set
from mmjax.train.task import Task
from mmjax.train.topk import bpr_task, negative_candidates

logger = logging.getLogger(__name__)


def trainable_pairs(split: ColdSplit, pairs: np.ndarray) -> np.ndarray:
    """The pairs whose user has a train interaction (no user vector is learned for the others)."""
    return pairs[split.dataset.user_train_counts()[pairs[:, 0]] > 0]


def cold_views(split: ColdSplit) -> dict[str, EvalSet]:
    """The protocol's views: valid and test on cold items, test_warm on warm items, test_hybrid on all."""
    data = split.dataset
    indptr, indices = data.train_csr()

    def view(pairs: np.ndarray, candidates: np.ndarray | None, name: str) -> EvalSet | None:
        pairs = trainable_pairs(split, pairs)
        if len(pairs) == 0:
            return None
        eval_set = build_eval_set(pairs, indptr, indices, data.num_items)
        logger.info("view %s: %d users, %d (user, item) pairs, %d candidate items", name, eval_set.num_users,
                    len(pairs), data.num_items if candidates is None else len(candidates))
        return dataclasses.replace(eval_set, candidates=candidates)

    views = {name: view(split.rows(name, cold=True), split.cold_items, name) for name in ("valid", "test")}
    for name in ("valid", "test"):
        if views[name] is None:
            raise DataError(f"dataset {data.name!r}: no cold item of the {name} half has an interaction of a user "
                            "with train interactions, so the cold view cannot be evaluated")
    views["test_warm"] = view(split.rows("test", cold=False), split.warm_items, "test_warm")
    views["test_hybrid"] = view(data.test, None, "test_hybrid")
    return {name: eval_set for name, eval_set in views.items() if eval_set is not None}


def coldstart_task(config: ml_collections.ConfigDict, dataset: InteractionDataset) -> Task:
    """A Task for any registered graph model on the cold-start re-split of `dataset` (data.cold)."""
    cold_cfg = config.data.get("cold", ml_collections.ConfigDict())
    split = cold_item_split(dataset, cold_cfg.get("fraction", 0.2), int(cold_cfg.get("seed", 2025)))
    data = split.dataset
    return bpr_task(config, data, cold_views(split), negative_candidates(data, config.train.negative_pool))
