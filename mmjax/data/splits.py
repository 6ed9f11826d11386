"""Splits for interaction files without an x_label column, and k-core filtering; host-side numpy.

random:         each user's interactions shuffled (seeded) and cut train / valid / test by `ratios`
                (MMRec's 8:1:1 by default): floor(r_valid * n) valid and floor(r_test * n) test rows, the
                rest train, so a user with fewer than 10 interactions keeps them all in train.
leave_one_out:  each user's last interaction in time order is test, the one before valid, the rest train
                (RecBole's leave-one-out for sequences); a user with one interaction keeps it in train.
"""

from __future__ import annotations

import logging

import numpy as np

from mmjax.errors import ConfigError

logger = logging.getLogger(__name__)
SPLITS = ("auto", "x_label", "random", "leave_one_out")


def check_split(split: str, ratios: tuple[float, ...], kcore: int) -> None:
    """ConfigError for a bad data.split, data.split_ratios or data.kcore."""
    if split not in SPLITS:
        raise ConfigError(f"data.split: expected one of {SPLITS}, got {split!r}")
    if len(ratios) != 3 or any(not 0 <= r for r in ratios) or not 0 < ratios[0] or abs(sum(ratios) - 1) > 1e-6:
        raise ConfigError(f"data.split_ratios: expected (train, valid, test) >= 0 summing to 1 with train > 0, "
                          f"got {tuple(ratios)!r}")
    if isinstance(kcore, bool) or not isinstance(kcore, int) or kcore < 0:
        raise ConfigError(f"data.kcore: expected an int >= 0 (0: no filtering), got {kcore!r}")


def kcore_keep(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """bool mask of the rows left once users and items with fewer than k rows are removed, repeatedly,
    until every remaining user and item has at least k."""
    keep = np.ones(len(users), bool)
    while k > 1:
        user_counts = np.bincount(users[keep], minlength=int(users.max()) + 1)
        item_counts = np.bincount(items[keep], minlength=int(items.max()) + 1)
        drop = keep & ((user_counts[users] < k) | (item_counts[items] < k))
        if not drop.any():
            break
        keep &= ~drop
    return keep


def rank_within_user(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each row among its user's rows sorted by `order`, its user's row count)."""
    sort = np.lexsort((order, users))
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), np.int64)
    rank[sort] = np.arange(len(users)) - starts[users[sort]]
    return rank, counts[users]


def random_labels(users: np.ndarray, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """x_label (0 train, 1 valid, 2 test) of each row: a seeded shuffle of each user's rows, cut by ratios."""
    rank, count = rank_within_user(users, np.random.default_rng(seed).permutation(len(users)))
    num_valid = np.floor(ratios[1] * count + 1e-9).astype(np.int64)
    num_test = np.floor(ratios[2] * count + 1e-9).astype(np.int64)
    return np.where(rank >= count - num_test, 2, np.where(rank >= count - num_test - num_valid, 1, 0))


def leave_one_out_labels(users: np.ndarray, order: np.ndarray) -> np.ndarray:
    """x_label of each row: each user's last row in `order` (ties: file order) test, the one before valid."""
    rank, count = rank_within_user(users, np.lexsort((np.arange(len(users)), order)).argsort())
    return np.where((rank == count - 1) & (count >= 2), 2, np.where((rank == count - 2) & (count >= 3), 1, 0))
