"""BPR-MF: one free vector per user and per item, scored by dot product."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.models.base import GraphModel, embedding_model
from mmjax.models.initializers import embedding_initializer
from mmjax.models.outputs import Embeddings


class BPRMF(nn.Module):
    """Matrix factorisation trained with the BPR loss; ignores the graph."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, consts: None = None) -> Embeddings:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        return Embeddings(users=users, items=items, ego_users=users, ego_items=items)


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """BPR-MF with MMRec's loss: BPR + reg_weight * EmbLoss of the batch rows."""
    module = BPRMF(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=cfg.embed_dim,
                   embedding_init=cfg.init)
    return embedding_model(module, None, float(cfg.reg_weight))
