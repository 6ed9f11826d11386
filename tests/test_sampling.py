"""BPR epoch batches: shapes, padding weights, negatives outside the user's train set."""

import numpy as np
import pytest

from mmjax.data.sampling import bpr_epoch_batches, sample_negatives
from mmjax.errors import DataError


def random_pairs(rng, num_users=50, num_items=30, per_user=8):
    pairs = [(u, i) for u in range(num_users) for i in rng.choice(num_items, per_user, replace=False)]
    return np.array(pairs, dtype=np.int32)


def test_negatives_are_candidates_outside_train_set():
    rng = np.random.default_rng(0)
    pairs = random_pairs(rng)
    candidates = np.arange(0, 30, 2, dtype=np.int32)  # only even items
    batches = bpr_epoch_batches(pairs, 30, candidates, batch_size=64, rng=rng)
    train = set(map(tuple, pairs.tolist()))
    real = batches["weights"].reshape(-1) > 0
    users = batches["users"].reshape(-1)[real]
    negatives = batches["negatives"].reshape(-1)[real]
    assert all((u, n) not in train for u, n in zip(users.tolist(), negatives.tolist()))
    assert np.all(negatives % 2 == 0)


def test_epoch_is_a_padded_permutation_of_train_pairs():
    rng = np.random.default_rng(1)
    pairs = random_pairs(rng)  # 400 pairs
    batches = bpr_epoch_batches(pairs, 30, np.arange(30, dtype=np.int32), batch_size=64, rng=rng)
    assert batches["users"].shape == (7, 64)
    assert batches["weights"].sum() == len(pairs)
    assert np.all(batches["weights"][:-1] == 1) and batches["weights"][-1].sum() == 400 - 6 * 64
    real = batches["weights"].reshape(-1) > 0
    got = np.stack([batches["users"].reshape(-1)[real], batches["positives"].reshape(-1)[real]], 1)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, pairs.tolist()))


def test_same_rng_seed_same_epoch():
    pairs = random_pairs(np.random.default_rng(2))
    one = bpr_epoch_batches(pairs, 30, np.arange(30, dtype=np.int32), 64, np.random.default_rng([9, 3]))
    two = bpr_epoch_batches(pairs, 30, np.arange(30, dtype=np.int32), 64, np.random.default_rng([9, 3]))
    other = bpr_epoch_batches(pairs, 30, np.arange(30, dtype=np.int32), 64, np.random.default_rng([9, 4]))
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
    assert not np.array_equal(one["negatives"], other["negatives"])


def test_user_with_every_candidate_is_an_error():
    pairs = np.array([[0, 0], [0, 1]], dtype=np.int32)
    keys = np.sort(pairs[:, 0].astype(np.int64) * 2 + pairs[:, 1])
    with pytest.raises(DataError, match="could not draw negatives"):
        sample_negatives(np.array([0]), keys, np.array([0, 1], np.int32), 2, np.random.default_rng(0),
                         max_rounds=5)
