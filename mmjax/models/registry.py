"""config.model.name -> the model file's build(cfg, dataset) -> GraphModel or SequenceModel (imported on first use)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

import ml_collections

import numpy as np

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError
from mmjax.models.base import GraphModel, SequenceModel

# name -> module under mmjax.models defining build(cfg, dataset) -> GraphModel | SequenceModel
MODELS: dict[str, str] = {
    "bpr": "bpr",
    "lightgcn": "lightgcn",
    "vbpr": "vbpr",
    "freedom": "freedom",
    "mgcn": "mgcn",
    "egra": "egra",
    "rlmultimodalrec": "rlmultimodalrec",
    "magnet": "magnet",
    "sasrec": "sasrec",
    "cammsr": "cammsr",
    "mamex": "mamex",
    "dropoutnet": "dropoutnet",
    "clcrec": "clcrec",
}


def build_model(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel | SequenceModel:
    """The model named by cfg.name, built for `dataset`; ConfigError listing the known names otherwise."""
    if cfg.name not in MODELS:
        raise ConfigError(f"model.name: expected one of {sorted(MODELS)}, got {cfg.name!r}")
    if cfg.embed_dim <= 0:
        raise ConfigError(f"model.embed_dim: expected > 0, got {cfg.embed_dim}")
    if cfg.reg_weight < 0:
        raise ConfigError(f"model.reg_weight: expected >= 0, got {cfg.reg_weight}")
    return importlib.import_module(f"mmjax.models.{MODELS[cfg.name]}").build(cfg, dataset)


ConstsWith = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], Any]


def consts_builder(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> ConstsWith:
    """consts_with(features, missing) -> the constants cfg's model reads when `dataset` has these features
    (and `missing` masks): everything built from features (kNN item graphs, normalised tables) is rebuilt,
    so evaluation with a modality missing sees what a deployment without it would."""

    def consts_with(features: Mapping[str, np.ndarray], missing: Mapping[str, np.ndarray]) -> Any:
        return build_model(cfg, dataclasses.replace(dataset, features=features, missing_features=missing)).consts

    return consts_with
