"""config.model.name -> a Linen module built from the config and the dataset sizes."""

from __future__ import annotations

from typing import Callable

import ml_collections
from flax import linen as nn

from mmjax.errors import ConfigError
from mmjax.models.bpr import BPRMF
from mmjax.models.lightgcn import LightGCN


def _bpr(cfg: ml_collections.ConfigDict, num_users: int, num_items: int) -> nn.Module:
    return BPRMF(num_users=num_users, num_items=num_items, embed_dim=cfg.embed_dim, embedding_init=cfg.init)


def _lightgcn(cfg: ml_collections.ConfigDict, num_users: int, num_items: int) -> nn.Module:
    if cfg.n_layers < 0:
        raise ConfigError(f"model.n_layers: expected >= 0, got {cfg.n_layers}")
    return LightGCN(num_users=num_users, num_items=num_items, embed_dim=cfg.embed_dim,
                    n_layers=cfg.n_layers, embedding_init=cfg.init)


MODELS: dict[str, Callable[[ml_collections.ConfigDict, int, int], nn.Module]] = {
    "bpr": _bpr,
    "lightgcn": _lightgcn,
}


def build_model(cfg: ml_collections.ConfigDict, num_users: int, num_items: int) -> nn.Module:
    """The module named by cfg.name; ConfigError listing the known names otherwise."""
    if cfg.name not in MODELS:
        raise ConfigError(f"model.name: expected one of {sorted(MODELS)}, got {cfg.name!r}")
    if cfg.embed_dim <= 0:
        raise ConfigError(f"model.embed_dim: expected > 0, got {cfg.embed_dim}")
    return MODELS[cfg.name](cfg, num_users, num_items)
