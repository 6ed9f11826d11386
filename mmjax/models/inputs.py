"""Constant model inputs built once from a dataset on the host: graphs and modality features."""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError, DataError
from mmjax.graph import (BipartiteAdjacency, Graph, bipartite_adjacency, knn_cosine_edges, mixed_knn_graph,
                         propagation_graph, user_item_graph)


def on_device(tree):
    """Every numpy leaf as a jax array (graphs keep their pytree structure)."""
    return jax.tree_util.tree_map(jnp.asarray, tree)


def interaction_graph(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> Graph:
    """Â of the train interactions, in the representation cfg.propagation names."""
    return on_device(propagation_graph(user_item_graph(dataset.train, dataset.num_users, dataset.num_items),
                                       cfg.propagation))


def interaction_blocks(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> Graph | BipartiteAdjacency:
    """Â of the train interactions for models that keep user and item tables apart: on the sparse path its
    two CSR blocks (the same products, no [U + I] table), else interaction_graph's representation."""
    if cfg.propagation != "sparse":
        return interaction_graph(cfg, dataset)
    return on_device(bipartite_adjacency(user_item_graph(dataset.train, dataset.num_users, dataset.num_items),
                                         dataset.num_users))


def selected_modalities(cfg: ml_collections.ConfigDict, dataset: InteractionDataset,
                        minimum: int = 1) -> tuple[str, ...]:
    """The modalities a model reads: cfg.modalities (None = all the dataset has), checked against the data."""
    available = dataset.modalities
    wanted = available if cfg.get("modalities") is None else tuple(cfg.modalities)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ConfigError(f"model.modalities: {unknown} not in dataset {dataset.name!r}, which has "
                          f"{list(available) or 'no feature files'}")
    if len(set(wanted)) < minimum:
        raise DataError(f"model {cfg.name!r} needs at least {minimum} modality feature file(s) "
                        f"(<modality>_feat.npy) in data.dir; dataset {dataset.name!r} gives {len(set(wanted))}")
    return tuple(dict.fromkeys(wanted))


FEATURE_NORMS = ("none", "l2", "standard")


def normalised(features: np.ndarray, norm: str) -> np.ndarray:
    """Rows L2-normalised ("l2"), columns standardised to mean 0 / sd 1 ("standard"), or as they are."""
    if norm == "l2":
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    if norm == "standard":
        return (features - features.mean(axis=0)) / np.maximum(features.std(axis=0), 1e-12)
    if norm == "none":
        return features
    raise ConfigError(f"model.feature_norm: expected one of {FEATURE_NORMS}, got {norm!r}")


def modality_features(dataset: InteractionDataset, modalities: Sequence[str],
                      norm: str = "none") -> dict[str, jax.Array]:
    """The item features of each modality, float32 [num_items, dim], normalised as `norm` says."""
    return {name: jnp.asarray(normalised(np.asarray(dataset.features[name]), norm), jnp.float32)
            for name in modalities}


def item_knn_graph(cfg: ml_collections.ConfigDict, dataset: InteractionDataset,
                   weights: Mapping[str, float], weighted: bool = True) -> Graph:
    """Σ_m w_m S_m of the modalities' kNN item graphs (k = cfg.knn_k), in cfg.propagation's representation.

    `weighted`: kept neighbours carry their cosine (LATTICE/MGCN) or 1 (FREEDOM) before normalisation.
    """
    if cfg.knn_k < 1:
        raise ConfigError(f"model.knn_k: expected >= 1, got {cfg.knn_k}")
    return on_device(propagation_graph(mixed_knn_graph(dataset.features, weights, k=int(cfg.knn_k),
                                                       weighted=weighted), cfg.propagation))


def modality_weights(modalities: tuple[str, ...], image_weight: float) -> dict[str, float]:
    """FREEDOM's mixing weights: 'image' gets image_weight beside other modalities, which share the rest.

    MMRec mixes image and text as w * S_image + (1 - w) * S_text; a lone modality gets weight 1, and
    without an 'image' modality all share equally.
    """
    if len(modalities) == 1:
        return {modalities[0]: 1.0}
    if "image" not in modalities:
        return {name: 1.0 / len(modalities) for name in modalities}
    rest = (1.0 - image_weight) / (len(modalities) - 1)
    return {name: image_weight if name == "image" else rest for name in modalities}


def content_edges(dataset: InteractionDataset, modalities: tuple[str, ...], k: int,
                  image_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item-item edges (receivers, senders, values) of the raw features: every modality's kNN edges with their
    cosines clipped at 0, weighted by modality_weights (MAGNET's view C, EGRA's raw-feature ablation)."""
    parts = []
    for name, weight in modality_weights(modalities, image_weight).items():
        receivers, senders, cosines = knn_cosine_edges(dataset.features[name], k)
        parts.append((receivers, senders, weight * np.maximum(cosines, 0.0)))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
