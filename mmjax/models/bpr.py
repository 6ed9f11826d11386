"""BPR-MF: one free vector per user and per item, scored by dot product."""

from __future__ import annotations

import jax.numpy as jnp
import jraph
from flax import linen as nn

from mmjax.models.initializers import embedding_initializer
from mmjax.models.outputs import Embeddings


class BPRMF(nn.Module):
    """Matrix factorisation trained with the BPR loss; ignores the graph."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple | None = None) -> Embeddings:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        return Embeddings(users=users, items=items, ego_users=users, ego_items=items)
