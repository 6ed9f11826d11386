"""The graph top-K protocol (MMRec): BPR with sampled negatives, full ranking of every item."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.data.sampling import bpr_epoch_batches
from mmjax.errors import ConfigError
from mmjax.eval import EvalSet, build_eval_set
from mmjax.models import build_model, consts_builder
from mmjax.train.task import Task

NEGATIVE_POOLS = ("train_items", "all_items")


def negative_candidates(dataset: InteractionDataset, pool: str) -> np.ndarray:
    """Items negatives are drawn from; MMRec draws only among items seen in training."""
    if pool == "train_items":
        return np.flatnonzero(dataset.item_train_counts() > 0).astype(np.int32)
    if pool == "all_items":
        return np.arange(dataset.num_items, dtype=np.int32)
    raise ConfigError(f"train.negative_pool: expected one of {NEGATIVE_POOLS}, got {pool!r}")


@functools.cache
def by_user(score_fn: Callable[[Any, jax.Array], jax.Array]) -> Callable:
    """A graph model's score_fn(state, users) as the seam's score_fn(state, query); one object per model
    function, so the evaluation compiles once."""
    return lambda state, query: score_fn(state, query["users"])


@functools.cache
def top_k_by_user(top_k_fn: Callable | None) -> Callable | None:
    """A graph model's top_k_fn(state, users, exclude, k) as the seam's top_k_fn(state, query, exclude, k)."""
    if top_k_fn is None:
        return None
    return lambda state, query, exclude, k: top_k_fn(state, query["users"], exclude, k)


def graph_topk_task(config: ml_collections.ConfigDict, dataset: InteractionDataset) -> Task:
    """A Task for any registered graph model: its loss and scorer, BPR batches and full-ranking eval sets."""
    indptr, indices = dataset.train_csr()
    eval_sets = {split: build_eval_set(dataset.eval_pairs(split), indptr, indices, dataset.num_items)
                 for split in ("valid", "test")}
    return bpr_task(config, dataset, eval_sets, negative_candidates(dataset, config.train.negative_pool))


def bpr_task(config: ml_collections.ConfigDict, dataset: InteractionDataset, eval_sets: dict[str, EvalSet],
             negatives: np.ndarray) -> Task:
    """A Task training config's graph model on `dataset`'s train pairs with one negative per pair drawn from
    `negatives` (seeded per epoch), evaluated on `eval_sets`; shared by the graph and cold-start protocols."""
    model = build_model(config.model, dataset)
    seed = int(config.train.seed)
    batch_size = int(config.train.batch_size)

    def epoch_batches(epoch: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, epoch])
        return bpr_epoch_batches(dataset.train, dataset.num_items, negatives, batch_size, rng)

    return Task(model_name=config.model.name, dataset_name=dataset.name, init_params=model.init,
                loss_fn=model.loss, epoch_batches=epoch_batches, score_state=model.scoring_state,
                score_fn=by_user(model.score_fn), consts=model.consts, eval_sets=eval_sets,
                prepare_epoch=model.prepare_epoch, schedule=model.schedule, top_k_fn=top_k_by_user(model.top_k_fn),
                consts_with=consts_builder(config.model, dataset))
