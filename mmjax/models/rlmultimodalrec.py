"""RLMultimodalRec: projected modality features fused by a learned gate, added to item IDs, 2-layer LightGCN.

Item layer-0 vector = ID embedding + gated fusion of the modality projections (item_init "id+content");
LightGCN over the train graph; score = dot product; BPR + λ/2 · squared L2 of the batch's ID rows.
The spec's ablations are config flags: fusion, gate, item_init, modalities, n_layers, content_dropout.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn
from flax import struct

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError
from mmjax.graph import Graph, lightgcn_layers
from mmjax.models.base import GraphModel, batch_scores, compiled_init
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import interaction_graph, modality_features, selected_modalities
from mmjax.models.outputs import Embeddings
from mmjax.nn.gates import FUSIONS, GATES, ModalityFusion
from mmjax.train.losses import bpr_loss, squared_norm_penalty

ITEM_INITS = ("id+content", "content_only", "concat_proj")


@struct.dataclass
class Inputs:
    graph: Graph
    features: dict[str, jax.Array]  # modality -> [num_items, feature dim]


class RLMultimodalRec(nn.Module):
    num_users: int
    num_items: int
    embed_dim: int = 64
    n_layers: int = 2
    fusion: str = "gate"
    gate: str = "vector"
    item_init: str = "id+content"
    content_dropout: float = 0.0
    content_scale_init: float | None = None  # None: content enters as it is; else a learned scalar from this
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, inputs: Inputs, train: bool = False) -> tuple[Embeddings, jax.Array]:
        """(embeddings, modality weights [num_items, M, 1 or d]) for modalities in sorted name order."""
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        projections = jnp.stack([nn.Dense(self.embed_dim, kernel_init=initializer, name=f"project_{name}")(
            inputs.features[name]) for name in sorted(inputs.features)])
        content, weights = ModalityFusion(self.fusion, self.gate, initializer, name="fusion")(projections)
        content = nn.Dropout(self.content_dropout, deterministic=not train)(content)
        if self.content_scale_init is not None:
            content = self.param("content_scale", nn.initializers.constant(self.content_scale_init), ()) * content
        if self.item_init == "id+content":
            items0 = items + content
        elif self.item_init == "content_only":
            items0 = content
        else:
            items0 = nn.Dense(self.embed_dim, kernel_init=initializer, name="concat_proj")(
                jnp.concatenate([items, content], axis=-1))
        final = lightgcn_layers(inputs.graph, jnp.concatenate([users, items0], axis=0), self.n_layers)
        out = Embeddings(users=final[:self.num_users], items=final[self.num_users:], ego_users=users,
                         ego_items=items)
        return out, weights


def projection_penalty(params: Any) -> jax.Array:
    """Σ ||W||² over the projection, gate and concat kernels (the spec's λ_w term)."""
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
               if path[-1].key == "kernel"]
    return sum(jnp.sum(jnp.square(kernel)) for kernel in kernels)


def check_config(cfg: ml_collections.ConfigDict) -> None:
    for field, value, allowed in (("fusion", cfg.fusion, FUSIONS), ("gate", cfg.gate, GATES),
                                  ("item_init", cfg.item_init, ITEM_INITS)):
        if value not in allowed:
            raise ConfigError(f"model.{field}: expected one of {allowed}, got {value!r}")
    if cfg.n_layers < 0:
        raise ConfigError(f"model.n_layers: expected >= 0, got {cfg.n_layers}")
    if not 0 <= cfg.content_dropout < 1:
        raise ConfigError(f"model.content_dropout: expected a value in [0, 1), got {cfg.content_dropout}")
    if cfg.proj_weight_decay < 0:
        raise ConfigError(f"model.proj_weight_decay: expected >= 0, got {cfg.proj_weight_decay}")


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    check_config(cfg)
    modalities = selected_modalities(cfg, dataset)
    inputs = Inputs(graph=interaction_graph(cfg, dataset),
                    features=modality_features(dataset, modalities, cfg.feature_norm))
    module = RLMultimodalRec(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=cfg.embed_dim,
                             n_layers=cfg.n_layers, fusion=cfg.fusion, gate=cfg.gate, item_init=cfg.item_init,
                             content_dropout=cfg.content_dropout, content_scale_init=cfg.content_scale_init,
                             embedding_init=cfg.init)
    reg_weight, proj_weight_decay = float(cfg.reg_weight), float(cfg.proj_weight_decay)

    def loss(params, consts, batch, rng, axis_name=None):
        out, _ = module.apply(params, consts, train=True, rngs={"dropout": rng})
        _, positive, negative = batch_scores(out, batch)
        ranking = bpr_loss(positive, negative, batch["weights"], axis_name)
        reg = squared_norm_penalty((out.ego_users[batch["users"]], out.ego_items[batch["positives"]],
                                    out.ego_items[batch["negatives"]]), batch["weights"], axis_name)
        total = ranking + reg_weight * reg
        parts = {"bpr": ranking, "reg": reg}
        if proj_weight_decay:
            parts["proj"] = projection_penalty(params)
            total = total + proj_weight_decay * parts["proj"]
        return total, parts

    def score_state(params, consts):
        out, _ = module.apply(params, consts)
        return out.users, out.items

    def inspect(params, consts) -> dict[str, jax.Array]:
        """Per-item weight of each modality (mean over dimensions for the vector gate); the content scale."""
        _, weights = module.apply(params, consts)
        out = {f"gate/{name}": jnp.mean(weights[:, m], axis=-1) for m, name in enumerate(sorted(modalities))}
        if "content_scale" in params["params"]:
            out["content_scale"] = params["params"]["content_scale"]
        return out

    return GraphModel(init=compiled_init(module, inputs), loss=loss, score_state=score_state,
                      consts=inputs, inspect=inspect)
