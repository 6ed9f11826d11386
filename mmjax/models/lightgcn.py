"""LightGCN: ID embeddings smoothed over the normalised user-item graph, layers averaged."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError
from mmjax.graph import Graph, lightgcn_user_item
from mmjax.models.base import GraphModel, embedding_model
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import interaction_blocks
from mmjax.models.outputs import Embeddings


class LightGCN(nn.Module):
    """Final embeddings = mean over l = 0..L of Â^l E, with E the concatenated user and item tables."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    n_layers: int = 2
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, graph: Graph) -> Embeddings:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        final_users, final_items = lightgcn_user_item(graph, users, items, self.n_layers)
        return Embeddings(users=final_users, items=final_items, ego_users=users, ego_items=items)


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """LightGCN over the train graph, with MMRec's loss: BPR + reg_weight * EmbLoss of the ego rows."""
    if cfg.n_layers < 0:
        raise ConfigError(f"model.n_layers: expected >= 0, got {cfg.n_layers}")
    module = LightGCN(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=cfg.embed_dim,
                      n_layers=cfg.n_layers, embedding_init=cfg.init)
    return embedding_model(module, interaction_blocks(cfg, dataset), float(cfg.reg_weight))
