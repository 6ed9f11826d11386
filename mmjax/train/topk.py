"""The graph top-K protocol (MMRec): BPR with sampled negatives, full ranking by dot product."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.data.sampling import bpr_epoch_batches
from mmjax.errors import ConfigError
from mmjax.eval import build_eval_set
from mmjax.graph import propagation_graph, user_item_graph
from mmjax.models import Embeddings, build_model
from mmjax.train.losses import bpr_loss, embedding_norm_penalty
from mmjax.train.task import Task

NEGATIVE_POOLS = ("train_items", "all_items")


def dot_scores(state: tuple[jax.Array, jax.Array], users: jax.Array) -> jax.Array:
    """Scores of every item for a block of users: final user vectors times final item vectors."""
    user_vectors, item_vectors = state
    return user_vectors[users] @ item_vectors.T


def negative_candidates(dataset: InteractionDataset, pool: str) -> np.ndarray:
    """Items negatives are drawn from; MMRec draws only among items seen in training."""
    if pool == "train_items":
        return np.flatnonzero(dataset.item_train_counts() > 0).astype(np.int32)
    if pool == "all_items":
        return np.arange(dataset.num_items, dtype=np.int32)
    raise ConfigError(f"train.negative_pool: expected one of {NEGATIVE_POOLS}, got {pool!r}")


def graph_topk_task(config: ml_collections.ConfigDict, dataset: InteractionDataset) -> Task:
    """A Task for any model whose output is an Embeddings of final and layer-0 vectors."""
    model = build_model(config.model, dataset.num_users, dataset.num_items)
    graph = jax.tree_util.tree_map(jnp.asarray, propagation_graph(
        user_item_graph(dataset.train, dataset.num_users, dataset.num_items), config.model.propagation))
    reg_weight = float(config.model.reg_weight)
    if reg_weight < 0:
        raise ConfigError(f"model.reg_weight: expected >= 0, got {reg_weight}")
    candidates = negative_candidates(dataset, config.train.negative_pool)
    seed = int(config.train.seed)
    batch_size = int(config.train.batch_size)

    def loss_fn(params, consts, batch, rng, axis_name=None):
        del rng  # BPR-MF and LightGCN are deterministic given the batch.
        out: Embeddings = model.apply(params, consts)
        users, positives, negatives = batch["users"], batch["positives"], batch["negatives"]
        user_vectors = out.users[users]
        positive_scores = jnp.sum(user_vectors * out.items[positives], axis=-1)
        negative_scores = jnp.sum(user_vectors * out.items[negatives], axis=-1)
        ranking = bpr_loss(positive_scores, negative_scores, batch["weights"], axis_name)
        reg = embedding_norm_penalty(
            (out.ego_users[users], out.ego_items[positives], out.ego_items[negatives]), batch["weights"],
            axis_name)
        return ranking + reg_weight * reg, {"bpr": ranking, "reg": reg}

    def epoch_batches(epoch: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, epoch])
        return bpr_epoch_batches(dataset.train, dataset.num_items, candidates, batch_size, rng)

    def score_state(params, consts):
        out: Embeddings = model.apply(params, consts)
        return out.users, out.items

    indptr, indices = dataset.train_csr()
    eval_sets = {split: build_eval_set(dataset.eval_pairs(split), indptr, indices, dataset.num_items)
                 for split in ("valid", "test")}
    return Task(model_name=config.model.name, dataset_name=dataset.name,
                init_params=lambda rng: model.init(rng, graph), loss_fn=loss_fn,
                epoch_batches=epoch_batches, score_state=score_state, score_fn=dot_scores,
                consts=graph, eval_sets=eval_sets)
