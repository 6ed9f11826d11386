"""Per-epoch BPR training batches: shuffled (user, positive) pairs with one sampled negative each."""

from __future__ import annotations

import numpy as np

from mmjax.data.dataset import pair_keys
from mmjax.errors import DataError


def sample_negatives(users: np.ndarray, train_keys: np.ndarray, candidates: np.ndarray,
                     num_items: int, rng: np.random.Generator, max_rounds: int = 1000) -> np.ndarray:
    """One uniform negative per user from `candidates`, re-drawn while it is in the user's train set.

    `train_keys` are the sorted values user * num_items + item of the train interactions.
    """
    negatives = candidates[rng.integers(len(candidates), size=len(users))]
    pending = np.arange(len(users))
    for _ in range(max_rounds):
        keys = users[pending].astype(np.int64) * num_items + negatives[pending]
        found = np.searchsorted(train_keys, keys)
        clash = (found < len(train_keys)) & (train_keys[np.minimum(found, len(train_keys) - 1)] == keys)
        pending = pending[clash]
        if len(pending) == 0:
            return negatives
        negatives[pending] = candidates[rng.integers(len(candidates), size=len(pending))]
    raise DataError(f"could not draw negatives for {len(pending)} users after {max_rounds} rounds: "
                     "some user has interacted with (almost) every candidate item")


def bpr_epoch_batches(train_pairs: np.ndarray, num_items: int, candidates: np.ndarray,
                      batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One epoch as stacked arrays [steps, batch_size]: 'users', 'positives', 'negatives', 'weights'.

    Pairs are shuffled, then cut into batches; the last batch is padded and its padding rows get
    weight 0, so every step has one shape and a partial batch still averages over its real rows.
    """
    train_keys = np.sort(pair_keys(train_pairs, num_items))
    order = rng.permutation(len(train_pairs))
    users = train_pairs[order, 0].astype(np.int32)
    positives = train_pairs[order, 1].astype(np.int32)
    negatives = sample_negatives(users, train_keys, candidates.astype(np.int32), num_items, rng)
    steps = -(-len(users) // batch_size)
    padded = steps * batch_size

    def stack(values: np.ndarray) -> np.ndarray:
        out = np.zeros(padded, dtype=values.dtype)
        out[:len(values)] = values
        return out.reshape(steps, batch_size)

    weights = np.zeros(padded, dtype=np.float32)
    weights[:len(users)] = 1.0
    return {"users": stack(users), "positives": stack(positives), "negatives": stack(negatives),
            "weights": weights.reshape(steps, batch_size)}
