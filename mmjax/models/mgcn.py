"""MGCN (multi-view graph convolutional network, ACM MM'23) as MMRec trains it.

Three views of the items: the user-item graph (LightGCN over Â on the ID embeddings: the "content",
i.e. behaviour, embeddings) and, per modality, a frozen kNN item-item graph over item vectors purified
by the modality (item ID ⊙ a sigmoid gate of the projected features), lifted to users through
R̂ = Â[:U, U:]. An attention over the modalities splits them into a common part and modality-specific
parts, the latter gated by the behaviour embeddings; their average (the "side" embeddings) is added to
the behaviour embeddings. Loss: BPR + squared L2 of the batch's final rows + InfoNCE aligning side and
behaviour embeddings of the batch's users and positive items.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn
from flax import struct

from mmjax.data import InteractionDataset
from mmjax.errors import check_fields
from mmjax.graph import (SparseAdjacency, bipartite_adjacency, lightgcn_user_item, propagate, propagation_graph,
                         user_item_block, user_item_graph)
from mmjax.models.base import Batch, GraphModel, batch_scores, compiled_init
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import item_knn_graph, modality_features, on_device, selected_modalities
from mmjax.nn import TorchLinear
from mmjax.nn.gates import common_specific_side
from mmjax.train.losses import bpr_loss, info_nce, squared_norm_penalty


@struct.dataclass
class MGCNOutput:
    """Final vectors (scored by dot product) and the two views the contrastive loss aligns."""

    users: jax.Array
    items: jax.Array
    side_users: jax.Array
    side_items: jax.Array
    content_users: jax.Array
    content_items: jax.Array


class MGCN(nn.Module):
    """consts -> MGCNOutput: behaviour (user-item) view + purified modality item-item views, fused.

    consts: 'adjacency' Â over U + I nodes, 'user_items' R̂ (see user_item_block), 'item_graphs' the
    normalised kNN graph S_m of each modality, and 'features' the raw features; with train_features the
    features are trainable tables (MMRec: from_pretrained(freeze=False)) initialised from
    consts['features'], which apply then no longer needs (so no frozen copy is kept on device).
    """

    num_users: int
    num_items: int
    modalities: tuple[str, ...]
    feature_dims: tuple[int, ...]
    embed_dim: int = 64
    n_ui_layers: int = 2
    n_layers: int = 1
    train_features: bool = True
    embedding_init: str = "xavier_uniform"

    def modality_table(self, consts: dict[str, Any], name: str, dim: int) -> jax.Array:
        """The raw features of modality `name`: a trained copy or the frozen constant."""
        if not self.train_features:
            return consts["features"][name]

        def from_features(rng: jax.Array) -> jax.Array:
            del rng
            if "features" in consts:
                return jnp.asarray(consts["features"][name], jnp.float32)
            # apply only checks the stored table's shape against this (abstractly); no copy is kept.
            return jnp.zeros((self.num_items, dim), jnp.float32)

        return self.param(f"{name}_features", from_features)

    @nn.compact
    def __call__(self, consts: dict[str, Any], user_rows: jax.Array | None = None,
                 item_rows: jax.Array | None = None) -> MGCNOutput:
        """Every node's vectors, or with user_rows and item_rows (node ids) only those rows': the side view
        is computed row by row, so a training step computes it for its batch's rows alone."""
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        # the behaviour view: over Â's two blocks, or any other graph over U + I nodes (EGRA's enhanced one)
        content_users, content_items = lightgcn_user_item(consts["adjacency"], users, items, self.n_ui_layers)

        user_views, item_views = [], []
        for name, dim in zip(self.modalities, self.feature_dims):
            table = self.modality_table(consts, name, dim)
            projected = TorchLinear(self.embed_dim, name=f"{name}_projection")(table)
            purified = items * nn.sigmoid(TorchLinear(self.embed_dim, name=f"{name}_purifier")(projected))
            for _ in range(self.n_layers):
                purified = propagate(consts["item_graphs"][name], purified)
            user_views.append(lift_to_users(consts["user_items"], purified, self.num_users))
            item_views.append(purified)

        # The side view is computed row by row, so users and items go through the same layers apart.
        layers = (TorchLinear(self.embed_dim, name="query_hidden"), TorchLinear(1, use_bias=False, name="query_score"),
                  [TorchLinear(self.embed_dim, name=f"{name}_preference") for name in self.modalities])
        if user_rows is not None:
            user_views, content_users = [view[user_rows] for view in user_views], content_users[user_rows]
        if item_rows is not None:
            item_views, content_items = [view[item_rows] for view in item_views], content_items[item_rows]
        side_users = common_specific_side(user_views, content_users, *layers)
        side_items = common_specific_side(item_views, content_items, *layers)
        return MGCNOutput(users=content_users + side_users, items=content_items + side_items,
                          side_users=side_users, side_items=side_items,
                          content_users=content_users, content_items=content_items)


def lift_to_users(user_items: Any, item_vectors: jax.Array, num_users: int) -> jax.Array:
    """R̂ x_items [U, d]: over the rectangular CSR block R̂ (the sparse path), or over R̂ as a graph of
    U + I nodes (the segment_sum path), propagating [0; x_items] and keeping the user rows."""
    if isinstance(user_items, SparseAdjacency):
        return propagate(user_items, item_vectors)
    padded = jnp.concatenate([jnp.zeros((num_users, item_vectors.shape[1]), item_vectors.dtype), item_vectors])
    return propagate(user_items, padded)[:num_users]


def mgcn_loss(out: MGCNOutput, batch: Batch, reg_weight: float, cl_weight: float, temperature: float,
              axis_name: str | None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """BPR + reg_weight * squared_norm_penalty(final rows) + cl_weight * (InfoNCE of items + of users)."""
    user_vectors, positive, negative = batch_scores(out, batch)
    weights = batch["weights"]
    ranking = bpr_loss(positive, negative, weights, axis_name)
    reg = squared_norm_penalty((user_vectors, out.items[batch["positives"]], out.items[batch["negatives"]]),
                               weights, axis_name)
    contrast = (info_nce(out.side_items[batch["positives"]], out.content_items[batch["positives"]], weights,
                         temperature, axis_name)
                + info_nce(out.side_users[batch["users"]], out.content_users[batch["users"]], weights,
                           temperature, axis_name))
    return ranking + reg_weight * reg + cl_weight * contrast, {"bpr": ranking, "reg": reg, "cl": contrast}


def batch_rows_output(module: MGCN, params, consts: dict[str, Any], batch: Batch) -> tuple[MGCNOutput, Batch]:
    """MGCNOutput of the batch's rows only (its users; its positive, then negative items) and the batch with
    its ids pointing into those rows: what mgcn_loss reads of the full output, at a fraction of the side view's
    cost (the same values per row)."""
    size = batch["users"].shape[0]
    out = module.apply(params, consts, batch["users"], jnp.concatenate([batch["positives"], batch["negatives"]]))
    local = jnp.arange(size, dtype=batch["users"].dtype)
    return out, {**batch, "users": local, "positives": local, "negatives": local + size}


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first out-of-range MGCN field (knn_k is checked by item_knn_graph)."""
    checks = [
        ("model.n_ui_layers", cfg.n_ui_layers, cfg.n_ui_layers >= 0, ">= 0"),
        ("model.n_layers", cfg.n_layers, cfg.n_layers >= 0, ">= 0"),
        ("model.cl_loss", cfg.cl_loss, cfg.cl_loss >= 0, ">= 0"),
        ("model.cl_temperature", cfg.cl_temperature, cfg.cl_temperature > 0, "> 0"),
    ]
    check_fields(checks)


def mgcn_parts(cfg: ml_collections.ConfigDict, dataset: InteractionDataset,
               behaviour_graph: Any = None) -> tuple[MGCN, dict[str, Any], dict[str, Any]]:
    """(module, consts, init_consts) of MGCN on `dataset`: the behaviour view propagates over
    `behaviour_graph` (a jraph graph over U + I nodes; None: the train graph Â), the modality views over
    their kNN item graphs, lifted to users by R̂ of the train graph. init_consts adds the raw features."""
    check_config(cfg)
    modalities = selected_modalities(cfg, dataset)
    bipartite = user_item_graph(dataset.train, dataset.num_users, dataset.num_items)
    user_items = user_item_block(bipartite, dataset.num_users)
    if cfg.propagation == "sparse":  # CSR blocks of the train graph: no [U + I] tables to concatenate
        blocks = bipartite_adjacency(bipartite, dataset.num_users)
        adjacency = blocks if behaviour_graph is None else propagation_graph(behaviour_graph, cfg.propagation)
        lift = blocks.user_items
    else:
        adjacency = propagation_graph(bipartite if behaviour_graph is None else behaviour_graph, cfg.propagation)
        lift = propagation_graph(user_items, cfg.propagation)
    consts = {
        "adjacency": on_device(adjacency),
        "user_items": on_device(lift),
        "item_graphs": {name: item_knn_graph(cfg, dataset, {name: 1.0}) for name in modalities},
    }
    features = modality_features(dataset, modalities)
    module = MGCN(num_users=dataset.num_users, num_items=dataset.num_items, modalities=modalities,
                  feature_dims=tuple(int(features[name].shape[1]) for name in modalities),
                  embed_dim=cfg.embed_dim, n_ui_layers=cfg.n_ui_layers, n_layers=cfg.n_layers,
                  train_features=cfg.train_features, embedding_init=cfg.init)
    # Trained features live in params; only the frozen ones stay among the constants.
    init_consts = {**consts, "features": features}
    if not cfg.train_features:
        consts = init_consts
    return module, consts, init_consts


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """MGCN over the train graph and the modalities' kNN item graphs, with MMRec's loss."""
    module, consts, init_consts = mgcn_parts(cfg, dataset)
    reg_weight, cl_weight, temperature = float(cfg.reg_weight), float(cfg.cl_loss), float(cfg.cl_temperature)

    def loss(params, consts, batch, rng, axis_name=None):
        del rng  # deterministic given the batch
        out, rows_batch = batch_rows_output(module, params, consts, batch)
        return mgcn_loss(out, rows_batch, reg_weight, cl_weight, temperature, axis_name)

    def score_state(params, consts):
        out: MGCNOutput = module.apply(params, consts)
        return out.users, out.items

    return GraphModel(init=compiled_init(module, init_consts), loss=loss, score_state=score_state,
                      consts=consts)
