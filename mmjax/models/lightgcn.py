"""LightGCN: ID embeddings smoothed over the normalised user-item graph, layers averaged."""

from __future__ import annotations

import jax.numpy as jnp
import jraph
from flax import linen as nn

from mmjax.graph import lightgcn_layers
from mmjax.models.initializers import embedding_initializer
from mmjax.models.outputs import Embeddings


class LightGCN(nn.Module):
    """Final embeddings = mean over l = 0..L of Â^l E, with E the concatenated user and item tables."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    n_layers: int = 2
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> Embeddings:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        final = lightgcn_layers(graph, jnp.concatenate([users, items], axis=0), self.n_layers)
        return Embeddings(users=final[:self.num_users], items=final[self.num_users:],
                          ego_users=users, ego_items=items)
