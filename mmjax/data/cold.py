"""The item cold-start split (specs/coldstart-protocol.md): a share of items holds no train interaction.

Cold items are drawn at random (`fraction` of all items, seeded) or given by the dataset (cold_items.npy).
Every interaction of a cold item leaves train: the cold items are shuffled and halved, and all interactions
of a valid-half item go to valid, of a test-half item to test, so a model meets a cold item only through
its content. Warm items keep their own train / valid / test rows, which make the warm views. A dataset that
ships its cold list and already keeps those items out of train (the reference code's folders) is used as
its files split it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np

from mmjax.data.dataset import SPLITS, InteractionDataset
from mmjax.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class ColdSplit:
    """A dataset re-split for item cold-start, and which items are cold.

    `dataset.train` holds warm items only; `dataset.valid` / `dataset.test` hold the interactions of the
    valid-half / test-half cold items and the warm items' own valid / test rows.
    """

    dataset: InteractionDataset
    cold_items: np.ndarray  # int32 [c] sorted: every cold item (the candidates of the cold views)
    valid_cold_items: np.ndarray  # int32 sorted: cold items whose interactions are in valid
    test_cold_items: np.ndarray  # int32 sorted: cold items whose interactions are in test
    source: str  # how the cold items were chosen, for logs

    @property
    def is_cold(self) -> np.ndarray:
        """bool [num_items]: whether each item is cold."""
        mask = np.zeros(self.dataset.num_items, bool)
        mask[self.cold_items] = True
        return mask

    @property
    def warm_items(self) -> np.ndarray:
        """int32 sorted: the items that may have train interactions."""
        return np.flatnonzero(~self.is_cold).astype(np.int32)

    def rows(self, split: str, cold: bool) -> np.ndarray:
        """The (user, item) pairs of `split` ('valid' or 'test') on cold (or on warm) items."""
        pairs = getattr(self.dataset, split)
        return pairs[self.is_cold[pairs[:, 1]] == cold]


def check_fraction(fraction: object) -> float:
    """data.cold.fraction as a float in (0, 1); ConfigError otherwise."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"data.cold.fraction: expected a share of items strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


def draw_cold_items(num_items: int, fraction: float, seed: int) -> np.ndarray:
    """round(fraction * num_items) distinct item ids (at least 2, so both halves get one), sorted int32."""
    count = int(round(fraction * num_items))
    if count < 2 or count >= num_items:
        raise ConfigError(f"data.cold.fraction: {fraction} of {num_items} items makes {count} cold items; expected "
                          f"at least 2 and fewer than all")
    return np.sort(np.random.default_rng(seed).choice(num_items, size=count, replace=False)).astype(np.int32)


def cold_item_split(dataset: InteractionDataset, fraction: float = 0.2, seed: int = 2025) -> ColdSplit:
    """The cold-start re-split of `dataset`: its cold_items when it has them, else a seeded random draw."""
    fraction = check_fraction(fraction)
    if dataset.cold_items is not None:
        cold, source = np.asarray(dataset.cold_items, np.int32), f"the dataset's cold item list ({len(dataset.cold_items)} items)"
    else:
        cold, source = draw_cold_items(dataset.num_items, fraction, seed), f"a random {fraction:g} of the items, seed {seed}"
    is_cold = np.zeros(dataset.num_items, bool)
    is_cold[cold] = True
    if dataset.cold_items is not None and not is_cold[dataset.train[:, 1]].any():
        valid_half = np.unique(dataset.valid[is_cold[dataset.valid[:, 1]], 1]).astype(np.int32)
        test_half = np.unique(dataset.test[is_cold[dataset.test[:, 1]], 1]).astype(np.int32)
        split = ColdSplit(dataset=dataset, cold_items=cold, valid_cold_items=valid_half, test_cold_items=test_half,
                          source=source + ", kept out of train by the dataset's own split")
    else:
        shuffled = np.random.default_rng([seed, 1]).permutation(cold)
        valid_half, test_half = np.sort(shuffled[: len(cold) // 2]), np.sort(shuffled[len(cold) // 2:])
        in_valid = np.zeros(dataset.num_items, bool)
        in_valid[valid_half] = True
        pairs = np.concatenate([getattr(dataset, name) for name in SPLITS])
        labels = np.concatenate([np.full(len(getattr(dataset, name)), index) for index, name in enumerate(SPLITS)])
        items = pairs[:, 1]
        labels = np.where(is_cold[items], np.where(in_valid[items], 1, 2), labels)
        if not np.any(labels == 0):
            raise DataError(f"dataset {dataset.name!r}: no interaction of a warm item is left to train on")
        checksum = hashlib.sha256(f"{dataset.checksum}|cold {source}".encode()).hexdigest()
        resplit = dataclasses.replace(dataset, **{name: pairs[labels == index] for index, name in enumerate(SPLITS)},
                                      checksum=checksum, sequences=None)
        split = ColdSplit(dataset=resplit, cold_items=cold, valid_cold_items=valid_half.astype(np.int32),
                          test_cold_items=test_half.astype(np.int32), source=source)
    log_cold_split(split)
    return split


def log_cold_split(split: ColdSplit) -> None:
    """Logs the split's counts: cold items per half, their rows and users, the warm rows kept."""
    data = split.dataset
    with_train = data.user_train_counts() > 0
    logger.info("cold-start split from %s: %d cold items (%d valid, %d test) of %d; train %d rows on %d warm items",
                split.source, len(split.cold_items), len(split.valid_cold_items), len(split.test_cold_items),
                data.num_items, len(data.train), int(np.sum(data.item_train_counts() > 0)))
    for name in ("valid", "test"):
        cold_rows, warm_rows = split.rows(name, cold=True), split.rows(name, cold=False)
        users = np.unique(cold_rows[:, 0])
        logger.info("%s: %d cold rows of %d users (%d of them without a train interaction, not evaluated); %d warm "
                    "rows", name, len(cold_rows), len(users), int(np.sum(~with_train[users])), len(warm_rows))
