"""mmjax.data.synthetic: determinism, split invariants, argument checks and the planted signal."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mmjax.data import InteractionDataset, make_synthetic
from mmjax.errors import DataError

SMALL = dict(num_users=200, num_items=120, mean_interactions=12.0)


@pytest.fixture(scope="module")
def default() -> InteractionDataset:
    return make_synthetic(seed=0)


def all_pairs(ds: InteractionDataset) -> np.ndarray:
    return np.concatenate([ds.train, ds.valid, ds.test])


def test_same_seed_same_data_other_seed_other_data():
    first, again = make_synthetic(**SMALL, seed=3), make_synthetic(**SMALL, seed=3)
    other = make_synthetic(**SMALL, seed=4)
    assert first.checksum == again.checksum and first.checksum != other.checksum
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(first, split), getattr(again, split))
    for name in first.modalities:
        np.testing.assert_array_equal(first.features[name], again.features[name])
    np.testing.assert_array_equal(first.item_category, again.item_category)
    assert not np.array_equal(first.features["image"], other.features["image"])
    assert len(first.train) != len(other.train) or not np.array_equal(first.train, other.train)
    assert first.source == "synthetic(seed=3)" and first.name == "synthetic"


def test_shapes_and_types(default):
    assert (default.num_users, default.num_items) == (1000, 600)
    assert default.modalities == ("image", "text")
    assert default.features["image"].shape == (600, 64) and default.features["text"].shape == (600, 32)
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in default.features.values())
    assert default.item_category.shape == (600,) and default.item_category.dtype == np.int32
    assert set(np.unique(default.item_category)) <= set(range(8))
    assert all(getattr(default, s).dtype == np.int32 for s in ("train", "valid", "test"))
    assert 15 < len(all_pairs(default)) / default.num_users < 25  # mean_interactions = 20


def test_split_invariants(default):
    per_user = np.bincount(all_pairs(default)[:, 0], minlength=default.num_users)
    train_users = np.bincount(default.train[:, 0], minlength=default.num_users)
    test_users = np.bincount(default.test[:, 0], minlength=default.num_users)
    assert per_user.min() >= 5
    assert train_users.min() >= 1
    assert np.all(test_users[per_user >= 3] >= 1)
    keys = all_pairs(default)[:, 0].astype(np.int64) * default.num_items + all_pairs(default)[:, 1]
    assert len(np.unique(keys)) == len(keys)  # no duplicates, so the splits are disjoint per user
    assert 0.75 < len(default.train) / len(keys) < 0.85


def test_popularity_has_a_long_tail(default):
    counts = np.sort(default.item_train_counts())[::-1]
    top_decile_share = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_decile_share > 0.25  # vs 0.10 for uniform popularity
    flat = make_synthetic(popularity_skew=0.0)
    flat_counts = np.sort(flat.item_train_counts())[::-1]
    assert flat_counts[:60].sum() / flat_counts.sum() < top_decile_share


def test_modalities_do_not_change_interactions():
    base = make_synthetic(**SMALL)
    noisier = make_synthetic(**SMALL, modalities={"image": (8, 3.0), "audio": [4, 0.0]})
    np.testing.assert_array_equal(base.train, noisier.train)
    assert noisier.modalities == ("audio", "image") and noisier.features["audio"].shape == (120, 4)
    assert make_synthetic(**SMALL, modalities={}).modalities == ()


def test_edge_sizes():
    ds = make_synthetic(num_users=3, num_items=5, mean_interactions=5.0, num_categories=1, latent_dim=1)
    assert len(all_pairs(ds)) == 15 and np.all(ds.item_category == 0)


def test_logs_report(caplog):
    with caplog.at_level(logging.INFO):
        make_synthetic(**SMALL)
    assert "users have no train interaction" in caplog.text and "cold items" in caplog.text


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(num_users=0), "num_users"),
    (dict(num_users=10.5), "num_users"),
    (dict(num_items=4), "num_items must be an integer >= 5"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(num_categories=0), "num_categories"),
    (dict(num_categories=True), "num_categories"),
    (dict(seed=-1), "seed"),
    (dict(mean_interactions=4.0), "mean_interactions"),
    (dict(mean_interactions=float("nan")), "mean_interactions"),
    (dict(num_items=10, mean_interactions=11.0), "mean_interactions must be <= num_items"),
    (dict(popularity_skew=-0.1), "popularity_skew"),
    (dict(modalities={"image": (0, 0.5)}), "modalities['image'] dim"),
    (dict(modalities={"image": (8, -1.0)}), "modalities['image'] noise std"),
    (dict(modalities={"image": 8}), "modalities['image'] must be (dim, noise std)"),
    (dict(modalities={"": (8, 1.0)}), "non-empty strings"),
    (dict(modalities=[("image", (8, 1.0))]), "modalities must map"),
])
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(DataError) as info:
        make_synthetic(**kwargs)
    assert fragment in str(info.value) and "make_synthetic" in str(info.value)


# ---------------------------------------------------- a model that uses the modalities beats one that does not


def recall_at_k(scores: np.ndarray, ds: InteractionDataset, k: int = 20,
                item_mask: np.ndarray | None = None) -> float:
    """Recall@k on the test split: train items masked, averaged over users with a (selected) test item."""
    scores = scores.astype(np.float64).copy()
    scores[ds.train[:, 0], ds.train[:, 1]] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    test = ds.eval_pairs("test")
    if item_mask is not None:
        test = test[item_mask[test[:, 1]]]
    relevant = np.zeros((ds.num_users, ds.num_items), dtype=bool)
    relevant[test[:, 0], test[:, 1]] = True
    hits = np.take_along_axis(relevant, top, axis=1).sum(axis=1)
    wanted = relevant.sum(axis=1)
    return float(np.mean(hits[wanted > 0] / wanted[wanted > 0]))


def content_scores(ds: InteractionDataset, features: np.ndarray) -> np.ndarray:
    """Cosine between each user's mean train-item feature and every item's feature."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    profile = np.zeros((ds.num_users, unit.shape[1]))
    np.add.at(profile, ds.train[:, 0], unit[ds.train[:, 1]])
    profile /= np.linalg.norm(profile, axis=1, keepdims=True) + 1e-12
    return profile @ unit.T


def item_knn_scores(ds: InteractionDataset) -> np.ndarray:
    """ID-only collaborative filtering: cosine item-item co-occurrence of the train matrix."""
    ratings = np.zeros((ds.num_users, ds.num_items))
    ratings[ds.train[:, 0], ds.train[:, 1]] = 1.0
    norms = np.sqrt(ratings.sum(axis=0)) + 1e-9
    similarity = ratings.T @ ratings / norms[:, None] / norms[None, :]
    np.fill_diagonal(similarity, 0.0)
    return ratings @ similarity


@pytest.mark.parametrize("modality", ["image", "text"])
def test_features_carry_item_information(default, modality):
    features = default.features[modality]
    shuffled = features[np.random.default_rng(0).permutation(len(features))]
    popularity = np.broadcast_to(default.item_train_counts().astype(np.float64),
                                 (default.num_users, default.num_items))
    content = recall_at_k(content_scores(default, features), default)
    no_information = recall_at_k(content_scores(default, shuffled), default)
    popular = recall_at_k(popularity, default)
    assert content >= 1.5 * no_information, (content, no_information)
    assert content >= 1.3 * popular, (content, popular)


def test_features_beat_ids_on_rare_items(default):
    counts = default.item_train_counts()
    rare = counts <= np.median(counts)
    content = recall_at_k(content_scores(default, default.features["image"]), default, item_mask=rare)
    ids_only = recall_at_k(item_knn_scores(default), default, item_mask=rare)
    assert content >= 1.3 * ids_only, (content, ids_only)
