"""Synthetic dataset with planted structure, so every model runs without files and modalities matter.

Items belong to categories whose centres live in a latent space; an item's factor is its category centre
plus noise, a user's factor mixes one or two preferred centres. Users pick items without replacement
from softmax(user . item / temperature + popularity log-weight), a Zipf-like popularity that is unrelated
to the factors, so rare items are hard for ID-only models. Every modality is a noisy random projection of
the item factors, so a model that reads the features can recover what IDs alone learn poorly.

With `sequential=True` each user's history is a time-ordered sequence with repeats instead: each next
item is, with probability FOLLOW_PROB, the successor of the previous one (items of a category form a
random cycle, so the successor shares its category), else a fresh draw from the user's preferences. A
model that reads the order can predict the successors; one that sees only the set of items cannot. The
last item is the test target and the one before it the valid target (leave-one-out).
"""

from __future__ import annotations

import logging
import math
import time
import types
import zlib
from collections.abc import Mapping

import numpy as np

from mmjax.data.dataset import InteractionDataset, arrays_checksum, log_dataset_report
from mmjax.data.mmrec import drop_duplicates
from mmjax.data.sequences import UserSequences
from mmjax.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_MODALITIES: Mapping[str, tuple[int, float]] = types.MappingProxyType({"image": (64, 0.5),
                                                                              "text": (32, 1.0)})
MIN_INTERACTIONS = 5  # the 5-core of MMRec's datasets
TEMPERATURE = 0.1  # of the preference logits; lower = users follow their factors more than popularity
ITEM_SPREAD = 0.6  # std of an item's factor around its category centre (centre norm ~ 1)
USER_SPREAD = 0.5  # std of a user's personal taste around the mix of preferred centres
SECOND_CATEGORY_PROB = 0.5  # share of users who prefer two categories
BLOCK_USERS = 1024  # users per block when drawing items (bounds memory; fixed for determinism)
VALID_SHARE, TEST_SHARE = 0.1, 0.1  # MMRec's per-user 8:1:1 split
FOLLOW_PROB = 0.5  # sequential: chance that the next item is the previous item's successor


def _check_int(name: str, value: object, minimum: int) -> int:
    """An integer >= minimum, else DataError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"make_synthetic: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: object, minimum: float) -> float:
    """A finite real >= minimum, else DataError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < minimum:
        raise DataError(f"make_synthetic: {name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)


def _check_modalities(modalities: object) -> dict[str, tuple[int, float]]:
    """name -> (dim >= 1, noise std >= 0), names non-empty strings."""
    if not isinstance(modalities, Mapping):
        raise DataError(f"make_synthetic: modalities must map name -> (dim, noise std), got {modalities!r}")
    out = {}
    for name, spec in modalities.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"make_synthetic: modalities: names must be non-empty strings, got {name!r}")
        if isinstance(spec, (str, bytes)) or not hasattr(spec, "__len__") or len(spec) != 2:
            raise DataError(f"make_synthetic: modalities[{name!r}] must be (dim, noise std), got {spec!r}")
        out[name] = (_check_int(f"modalities[{name!r}] dim", spec[0], 1),
                     _check_float(f"modalities[{name!r}] noise std", spec[1], 0.0))
    return out


def latent_structure(rng: np.random.Generator, num_users: int, num_items: int, latent_dim: int,
                     num_categories: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user factors [U, d], item factors [I, d], item category [I]); centres and spreads ~ unit norm."""
    scale = 1.0 / math.sqrt(latent_dim)
    centres = rng.normal(scale=scale, size=(num_categories, latent_dim))
    category = rng.integers(num_categories, size=num_items)
    items = centres[category] + rng.normal(scale=ITEM_SPREAD * scale, size=(num_items, latent_dim))
    primary = rng.integers(num_categories, size=num_users)
    secondary = (primary + rng.integers(1, max(num_categories, 2), size=num_users)) % num_categories
    weight = np.where(rng.random(num_users) < SECOND_CATEGORY_PROB, rng.uniform(0.5, 0.8, num_users), 1.0)
    users = (weight[:, None] * centres[primary] + (1.0 - weight[:, None]) * centres[secondary]
             + rng.normal(scale=USER_SPREAD * scale, size=(num_users, latent_dim)))
    return users, items, category


def interaction_counts(rng: np.random.Generator, num_users: int, num_items: int, mean: float) -> np.ndarray:
    """Items per user: 5 + a geometric tail with the requested mean, at most num_items."""
    extra = rng.geometric(1.0 / (mean - MIN_INTERACTIONS + 1.0), size=num_users) - 1
    return np.minimum(MIN_INTERACTIONS + extra, num_items)


def draw_items(rng: np.random.Generator, users: np.ndarray, items: np.ndarray, popularity_log: np.ndarray,
               counts: np.ndarray) -> np.ndarray:
    """(user, item) pairs: counts[u] distinct items per user by Gumbel top-k over the preference logits."""
    item_t = (items.T / TEMPERATURE).astype(np.float32)
    popularity_log = popularity_log.astype(np.float32)
    num_items = items.shape[0]
    chunks = []
    for start in range(0, len(users), BLOCK_USERS):
        block = slice(start, start + BLOCK_USERS)
        logits = users[block].astype(np.float32) @ item_t + popularity_log
        exponential = rng.standard_exponential(size=logits.shape, dtype=np.float32)
        logits -= np.log(np.maximum(exponential, np.finfo(np.float32).tiny))  # + Gumbel noise
        k = int(counts[block].max())
        top = np.argpartition(logits, num_items - k, axis=1)[:, num_items - k:]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(logits, top, axis=1), axis=1), axis=1)
        taken = np.arange(k)[None, :] < counts[block, None]
        block_users = np.broadcast_to(np.arange(start, start + len(logits))[:, None], top.shape)
        chunks.append(np.stack([block_users[taken], top[taken]], axis=1))
    return np.concatenate(chunks).astype(np.int32)


def split_per_user(rng: np.random.Generator, pairs: np.ndarray,
                   num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, x_label): pairs regrouped by user and shuffled within; first 80% train, 10% valid, rest test.

    Valid and test get floor(10%) each; a user with >= 3 items gets >= 1 test item; train keeps >= 1.
    Returns the labels aligned with the returned order of `pairs` (grouped by user, shuffled within).
    """
    order = np.lexsort((rng.random(len(pairs)), pairs[:, 0]))
    users = pairs[order, 0]
    sizes = np.bincount(users, minlength=num_users)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(len(users)) - starts[users]
    n = sizes[users]
    n_valid = np.floor(VALID_SHARE * n).astype(np.int64)
    n_test = np.where(n >= 3, np.maximum(np.floor(TEST_SHARE * n).astype(np.int64), 1), 0)
    n_train = n - n_valid - n_test
    labels = np.where(position < n_train, 0, np.where(position < n_train + n_valid, 1, 2))
    return order, labels


def successors(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    """int64 [I]: each item's successor, the next item of a random cycle through its category's items."""
    successor = np.arange(len(category))
    for c in np.unique(category):
        members = rng.permutation(np.flatnonzero(category == c))
        successor[members] = np.roll(members, -1)
    return successor


def draw_sequences(rng: np.random.Generator, users: np.ndarray, items: np.ndarray, popularity_log: np.ndarray,
                   counts: np.ndarray, successor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indptr [U + 1], items [n]): counts[u] items per user in order; repeats allowed.

    Step t's item is successor(item t-1) with probability FOLLOW_PROB (never at t = 0), else a draw from
    softmax(user . item / temperature + popularity log-weight).
    """
    num_users, num_items = users.shape[0], items.shape[0]
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.zeros(indptr[-1], dtype=np.int64)
    item_t = (items.T / TEMPERATURE).astype(np.float32)
    for start in range(0, num_users, BLOCK_USERS):
        block = np.arange(start, min(start + BLOCK_USERS, num_users))
        logits = users[block].astype(np.float32) @ item_t + popularity_log.astype(np.float32)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(probabilities, axis=1)
        cdf /= cdf[:, -1:]
        length = int(counts[block].max())
        drawn = np.empty((len(block), length), dtype=np.int64)
        for t in range(length):
            fresh = np.minimum((cdf < rng.random(len(block))[:, None]).sum(axis=1), num_items - 1)
            follow = rng.random(len(block)) < FOLLOW_PROB
            drawn[:, t] = fresh if t == 0 else np.where(follow, successor[drawn[:, t - 1]], fresh)
        taken = np.arange(length)[None, :] < counts[block, None]
        out[indptr[block[0]]:indptr[block[-1] + 1]] = drawn[taken]
    return indptr, out


def modality_features(seed: int, name: str, items: np.ndarray, dim: int, noise: float) -> np.ndarray:
    """item factors @ a random projection + Gaussian noise; its own stream, so modalities vary alone."""
    rng = np.random.default_rng([seed, 1, zlib.crc32(name.encode())])
    projection = rng.normal(size=(items.shape[1], dim))
    return (items @ projection + rng.normal(scale=noise, size=(items.shape[0], dim))).astype(np.float32)


def make_synthetic(num_users: int = 1000, num_items: int = 600, latent_dim: int = 16,
                   mean_interactions: float = 20.0, num_categories: int = 8,
                   modalities: Mapping[str, tuple[int, float]] = DEFAULT_MODALITIES,
                   popularity_skew: float = 1.0, seed: int = 0, sequential: bool = False) -> InteractionDataset:
    """A deterministic (by seed) dataset with planted latent, category and popularity structure.

    Interactions depend only on the sizes, categories, skew and seed, not on `modalities`, so the
    modalities' noise can be varied over the same interactions. `sequential`: time-ordered sequences with
    a planted next-item structure and a leave-one-out split (see the module docstring).
    """
    num_users = _check_int("num_users", num_users, 1)
    num_items = _check_int("num_items", num_items, MIN_INTERACTIONS)
    latent_dim = _check_int("latent_dim", latent_dim, 1)
    num_categories = _check_int("num_categories", num_categories, 1)
    seed = _check_int("seed", seed, 0)
    mean_interactions = _check_float("mean_interactions", mean_interactions, MIN_INTERACTIONS)
    if mean_interactions > num_items:
        raise DataError(f"make_synthetic: mean_interactions must be <= num_items ({num_items}), "
                        f"got {mean_interactions}")
    popularity_skew = _check_float("popularity_skew", popularity_skew, 0.0)
    modalities = _check_modalities(modalities)

    start = time.perf_counter()
    rng = np.random.default_rng([seed, 0])
    users, items, category = latent_structure(rng, num_users, num_items, latent_dim, num_categories)
    popularity_log = -popularity_skew * np.log1p(rng.permutation(num_items))  # Zipf over a random item order
    counts = interaction_counts(rng, num_users, num_items, mean_interactions)
    sequences = None
    if sequential:
        indptr, sequence_items = draw_sequences(rng, users, items, popularity_log, counts,
                                                successors(rng, category))
        seq_users = np.repeat(np.arange(num_users), counts)
        position = np.arange(len(seq_users)) - indptr[seq_users]
        labels = np.where(position == counts[seq_users] - 1, 2, np.where(position == counts[seq_users] - 2, 1, 0))
        sequences = UserSequences(indptr=indptr, items=sequence_items, labels=labels, num_items=num_items,
                                  order_column="generated")
        keep = drop_duplicates(seq_users * num_items + sequence_items, labels)
        pairs = np.stack([seq_users, sequence_items], axis=1).astype(np.int32)[keep]
        labels = labels[keep]
    else:
        pairs = draw_items(rng, users, items, popularity_log, counts)
        order, labels = split_per_user(rng, pairs, num_users)
        pairs = pairs[order]
    splits = {split: pairs[labels == label] for label, split in enumerate(("train", "valid", "test"))}
    features = {name: modality_features(seed, name, items, dim, noise)
                for name, (dim, noise) in sorted(modalities.items())}
    category = category.astype(np.int32)
    sequence_arrays = [] if sequences is None else [("sequence_indptr", sequences.indptr),
                                                    ("sequence_items", sequences.items)]
    checksum = arrays_checksum([("num_users", np.int64(num_users)), ("num_items", np.int64(num_items)),
                                *splits.items(), *sorted(features.items()), ("item_category", category),
                                *sequence_arrays])
    dataset = InteractionDataset(name="synthetic", num_users=num_users, num_items=num_items, **splits,
                                 features=features, item_category=category, checksum=checksum,
                                 source=f"synthetic(seed={seed}{', sequential' if sequential else ''})",
                                 sequences=sequences)
    logger.info("generated %s in %.2f s", dataset.source, time.perf_counter() - start)
    log_dataset_report(dataset)
    return dataset
