"""FREEDOM (Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", MM'23), as MMRec's FREEDOM trains and scores it.

Two graphs. A frozen item-item graph S = Σ_m w_m S_m mixes the modalities' binary kNN graphs (built once
from the raw features); the item ID embeddings are smoothed over it. A user-item LightGCN runs over the
train graph with degree-sensitive edge dropout, redrawn once per epoch; scoring uses the full graph.
Final users = LightGCN users; final items = LightGCN items + S^{n_mm_layers} (item ID embeddings).
The loss is BPR on the final vectors plus reg_weight times a BPR of the final users against each
modality's linearly projected raw features (MMRec keeps those feature tables trainable).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn
from flax import struct

from mmjax.data import InteractionDataset
from mmjax.errors import check_fields
from mmjax.graph import Graph, lightgcn_user_item, propagate
from mmjax.graph.dropout import BipartiteEdges, bipartite_edges, degree_sensitive_dropout, kept_edge_count
from mmjax.models.base import Batch, GraphModel, batch_scores, compiled_init
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import (interaction_blocks, item_knn_graph, modality_features, modality_weights,
                                 selected_modalities)
from mmjax.models.outputs import Embeddings
from mmjax.nn.linear import TorchLinear
from mmjax.train.losses import bpr_loss


@struct.dataclass
class FreedomInputs:
    """The constants FREEDOM reads. `graph` is the full Â as built; prepare_epoch swaps in the dropped one."""

    graph: Graph  # user-item Â (users first, then items)
    item_graph: Graph  # frozen mixed kNN item-item graph
    features: dict[str, jax.Array]  # raw features of the projected modalities (empty when reg_weight = 0)
    edges: BipartiteEdges  # train edges and their dropout sampling weights


class FREEDOM(nn.Module):
    """Final embeddings of FREEDOM, plus each projected modality's item table when `project` is set."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    n_ui_layers: int = 2
    n_mm_layers: int = 1
    projected: tuple[str, ...] = ()  # modalities whose features get a projection (the auxiliary BPR terms)
    train_features: bool = True  # raw feature tables as parameters (MMRec: from_pretrained(freeze=False))
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, inputs: FreedomInputs, project: bool = False) -> tuple[Embeddings, dict[str, jax.Array]]:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        item_view = items
        for _ in range(self.n_mm_layers):
            item_view = propagate(inputs.item_graph, item_view)
        final_users, final_items = lightgcn_user_item(inputs.graph, users, items, self.n_ui_layers)
        out = Embeddings(users=final_users, items=final_items + item_view, ego_users=users, ego_items=items)
        projections = {}
        if project:
            for name in self.projected:
                table = inputs.features[name]
                if self.train_features:
                    table = self.param(f"{name}_features", lambda _, t=table: jnp.asarray(t, jnp.float32))
                projections[name] = TorchLinear(self.embed_dim, name=f"{name}_projection")(table)
        return out, projections


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first out-of-range FREEDOM field."""
    checks = [
        ("n_ui_layers", cfg.n_ui_layers, cfg.n_ui_layers >= 0, ">= 0"),
        ("n_mm_layers", cfg.n_mm_layers, cfg.n_mm_layers >= 0, ">= 0"),
        ("mm_image_weight", cfg.mm_image_weight, 0.0 <= cfg.mm_image_weight <= 1.0, "in [0, 1]"),
        ("dropout", cfg.dropout, 0.0 <= cfg.dropout < 1.0, "in [0, 1)"),
    ]
    check_fields(checks, 'model.')


def freedom_loss(module: FREEDOM, reg_weight: float, params, consts: FreedomInputs, batch: Batch,
                 rng: jax.Array, axis_name: str | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """BPR on the final vectors + reg_weight * Σ_m BPR(final users, projected modality-m item rows).

    No embedding L2 term: MMRec's FREEDOM has none.
    """
    del rng  # the epoch's dropout is already in consts.graph
    out, projections = module.apply(params, consts, project=reg_weight > 0)
    user_vectors, positive, negative = batch_scores(out, batch)
    ranking = bpr_loss(positive, negative, batch["weights"], axis_name)
    parts = {"bpr": ranking}
    if not projections:
        return ranking, parts
    modal = sum(bpr_loss(jnp.sum(user_vectors * table[batch["positives"]], axis=-1),
                         jnp.sum(user_vectors * table[batch["negatives"]], axis=-1), batch["weights"], axis_name)
                for table in projections.values())
    parts["modality_bpr"] = modal
    return ranking + reg_weight * modal, parts


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """FREEDOM for `dataset` with MMRec's training: per-epoch edge dropout, full graph at scoring time."""
    check_config(cfg)
    modalities = selected_modalities(cfg, dataset)
    reg_weight = float(cfg.reg_weight)
    projected = modalities if reg_weight > 0 else ()
    edges = bipartite_edges(dataset.train, dataset.num_users, dataset.num_items)
    num_edges = int(edges.users.shape[0])
    dropout = float(cfg.dropout)
    num_keep = kept_edge_count(num_edges, dropout)
    # the sparse path keeps Â as its two blocks (BipartiteAdjacency), the epoch's dropped graph as well
    kind = "blocks" if cfg.propagation == "sparse" else cfg.propagation
    consts = FreedomInputs(
        graph=interaction_blocks(cfg, dataset),
        # MMRec's FREEDOM gives every kept neighbour value 1 before normalising (knn_weighted False).
        item_graph=item_knn_graph(cfg, dataset, modality_weights(modalities, float(cfg.mm_image_weight)),
                                  weighted=bool(cfg.knn_weighted)),
        features=modality_features(dataset, projected), edges=edges)
    module = FREEDOM(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=cfg.embed_dim,
                     n_ui_layers=cfg.n_ui_layers, n_mm_layers=cfg.n_mm_layers, projected=projected,
                     train_features=bool(cfg.train_features), embedding_init=cfg.init)

    def prepare_epoch(consts: FreedomInputs, rng: jax.Array) -> FreedomInputs:
        if dropout == 0.0:
            return consts  # MMRec trains on the full graph when dropout <= 0
        return consts.replace(graph=degree_sensitive_dropout(consts.edges, rng, num_keep, kind))

    def score_state(params, consts: FreedomInputs):
        out, _ = module.apply(params, consts)
        return out.users, out.items

    return GraphModel(init=compiled_init(module, consts, project=True),
                      loss=functools.partial(freedom_loss, module, reg_weight), score_state=score_state,
                      consts=consts, prepare_epoch=prepare_epoch)
