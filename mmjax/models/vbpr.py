"""VBPR: BPR-MF whose item vectors append a linear projection of the items' content features.

As MMRec runs it (He & McAuley, AAAI'16, without the visual bias term): a user has one free vector of
width 2d; an item is [free ID vector (d) ‖ W x_i + b (d)], with x_i the concatenation of the item's
modality features. Scores are dot products; the loss is BPR plus reg_weight * EmbLoss of the batch's
final user, positive and negative vectors, so the projection's output is regularised too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.models.base import GraphModel, embedding_model
from mmjax.models.initializers import embedding_initializer, torch_xavier_normal
from mmjax.models.inputs import modality_features, selected_modalities
from mmjax.models.outputs import Embeddings


class VBPR(nn.Module):
    """Users: a [num_users, 2d] table. Items: [ID table (d) ‖ Dense(d) of the item features]."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, item_features: jax.Array) -> Embeddings:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, 2 * self.embed_dim), jnp.float32)
        ids = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        # MMRec initialises the content projection's weight with torch's xavier_normal_, its bias with 0.
        content = nn.Dense(self.embed_dim, kernel_init=torch_xavier_normal, bias_init=nn.initializers.zeros,
                           name="item_linear")(item_features)
        items = jnp.concatenate([ids, content], axis=-1)
        # No propagation: the final vectors are also the ones EmbLoss regularises (MMRec's choice).
        return Embeddings(users=users, items=items, ego_users=users, ego_items=items)


def item_content(dataset: InteractionDataset, modalities: tuple[str, ...], norm: str = "none") -> jax.Array:
    """[num_items, Σ dims] float32: the modalities' features side by side, in sorted name order.

    Sorted order reproduces MMRec's concatenation (text, then image) on its two-modality datasets, tiktok
    included (its "text" slot held the audio features). MMRec reads them raw (norm "none").
    """
    features = modality_features(dataset, sorted(modalities), norm)
    return jnp.concatenate([features[name] for name in sorted(modalities)], axis=-1)


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """VBPR on the selected modalities (>= 1, else DataError), with MMRec's loss on the final vectors.

    MMRec's BPRLoss is -mean log(1e-10 + sigmoid(pos - neg)); ours is the exact -mean log sigmoid, which
    differs only once a pair is mis-ordered by more than ~20 (where MMRec's gradient vanishes).
    """
    module = VBPR(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=int(cfg.embed_dim),
                  embedding_init=cfg.init)
    embedding_initializer(cfg.init)  # a bad model.init fails here, at build time, not inside init
    features = item_content(dataset, selected_modalities(cfg, dataset), cfg.get("feature_norm", "none"))
    # op by op: compiled, the xavier-normal draws differ from the recorded runs' by a few ulps
    return embedding_model(module, features, float(cfg.reg_weight), compile_init=False)
