"""The in-memory dataset every loader returns: validated, read-only numpy arrays of one split.

A dataset holds (user, item) pairs of the train/valid/test splits, per-item modality features and
optional item categories. It is built once on the host and never imports jax.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Iterable, Mapping

import numpy as np

from mmjax.data.pretrained import PretrainedItems
from mmjax.data.sequences import UserSequences
from mmjax.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
EVAL_SPLITS = ("valid", "test")
MAX_ID = 2**31 - 1  # ids are stored as int32


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view, so a frozen dataset stays frozen without copying the caller's array."""
    view = array.view()
    view.setflags(write=False)
    return view


def _as_pairs(split: str, pairs: object, num_users: int, num_items: int) -> np.ndarray:
    """Checks one split's pairs (integer [n, 2], ids in range) and returns them as read-only int32."""
    array = np.asarray(pairs)
    if array.ndim != 2 or array.shape[1] != 2:
        raise DataError(f"{split}: expected an array of (user, item) pairs with shape [n, 2], got {array.shape}")
    if len(array) and not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{split}: expected integer (user, item) pairs, got dtype {array.dtype}")
    if len(array):
        for column, (what, limit) in enumerate((("user", num_users), ("item", num_items))):
            ids = array[:, column]
            bad = np.flatnonzero((ids < 0) | (ids >= limit))
            if len(bad):
                raise DataError(f"{split} row {bad[0]}: {what} id {ids[bad[0]]} is outside [0, {limit})")
    return _read_only(array.astype(np.int32, copy=False))


def _as_features(features: Mapping[str, object], num_items: int) -> dict[str, np.ndarray]:
    """Checks each modality ([num_items, dim>=1], numeric, finite) and returns read-only float32 arrays."""
    out = {}
    for name in sorted(features):
        if not isinstance(name, str) or not name:
            raise DataError(f"features: modality names must be non-empty strings, got {name!r}")
        array = np.asarray(features[name])
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DataError(f"features[{name!r}]: expected a float or integer array, got dtype {array.dtype}")
        if array.ndim != 2 or array.shape[0] != num_items or array.shape[1] < 1:
            raise DataError(f"features[{name!r}]: expected shape [{num_items}, dim >= 1], got {array.shape}")
        array = array.astype(np.float32, copy=False)
        bad_row = first_non_finite_row(array)
        if bad_row is not None:
            raise DataError(f"features[{name!r}] row {bad_row}: contains NaN or inf; features must be finite")
        out[name] = _read_only(array)
    return out


def first_non_finite_row(array: np.ndarray) -> int | None:
    """Index of the first row holding NaN or inf, or None when every value is finite."""
    finite = np.isfinite(array).reshape(len(array), -1).all(axis=1)
    return None if finite.all() else int(np.argmin(finite))


def _as_category(category: object, num_items: int) -> np.ndarray:
    """Checks the item categories (integer [num_items], >= 0) and returns them as read-only int32."""
    array = np.asarray(category)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"item_category: expected an integer array, got dtype {array.dtype}")
    if array.shape != (num_items,):
        raise DataError(f"item_category: expected shape [{num_items}], got {array.shape}")
    bad = np.flatnonzero((array < 0) | (array > MAX_ID))
    if len(bad):
        raise DataError(f"item_category row {bad[0]}: category {array[bad[0]]} is not in [0, 2**31)")
    return _read_only(array.astype(np.int32, copy=False))


def as_cold_items(items: object, num_items: int, source: str = "cold_items") -> np.ndarray:
    """Checks a cold item list (integer [c >= 2], distinct, item ids, not every item); read-only sorted int32."""
    array = np.asarray(items)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{source}: expected a 1-D integer array of item ids, got {array.dtype} {array.shape}")
    bad = np.flatnonzero((array < 0) | (array >= num_items))
    if len(bad):
        raise DataError(f"{source} entry {bad[0]}: item {array[bad[0]]} is not an item of the dataset "
                        f"(ids 0..{num_items - 1})")
    unique = np.unique(array)
    if len(unique) != len(array):
        raise DataError(f"{source}: lists {len(array) - len(unique)} item(s) twice; expected distinct item ids")
    if not 2 <= len(unique) < num_items:
        raise DataError(f"{source}: lists {len(unique)} items; expected at least 2 and fewer than all {num_items}")
    return _read_only(unique.astype(np.int32))


def pair_keys(pairs: np.ndarray, num_items: int) -> np.ndarray:
    """One int64 key per (user, item) pair: user * num_items + item (unique per pair)."""
    return pairs[:, 0].astype(np.int64) * num_items + pairs[:, 1]


def arrays_checksum(named_arrays: Iterable[tuple[str, np.ndarray]]) -> str:
    """sha256 hex over each array's name, dtype, shape and bytes, in the order given."""
    digest = hashlib.sha256()
    for name, array in named_arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class InteractionDataset:
    """Validated (user, item) splits plus per-item features; arrays are read-only.

    `valid` and `test` keep every row, including those of users without a train interaction;
    `eval_pairs` is the evaluation view that drops such users (MMRec's filter_out_cod_start_users).
    Equality is identity (arrays have no single truth value); compare `checksum`s instead.
    """

    name: str
    num_users: int
    num_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    features: Mapping[str, np.ndarray]
    item_category: np.ndarray | None = None
    checksum: str = ""
    source: str = ""
    sequences: UserSequences | None = None  # every interaction in time order, repeats kept; None = no order
    # The dataset's own id of each user / item (str [num_users] / [num_items]; '' where unknown), from its
    # id maps or from remapping sparse ids; None: the internal ids are the dataset's
    user_names: np.ndarray | None = None
    item_names: np.ndarray | None = None
    # The name of each category id (str [categories]), where the data names them (a RecBole .item file)
    category_names: np.ndarray | None = None
    # Items the dataset declares cold (cold_items.npy: int32 sorted, no train interaction wanted), for the
    # cold-start protocol; None: the protocol draws them
    cold_items: np.ndarray | None = None
    # Per modality, bool [num_items]: items whose features of that modality are missing (zero rows), for
    # models that mask them (missing-modality evaluation); a modality not named here is complete
    missing_features: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # Item representations from an earlier finished run (data/pretrained.py), attached by train.prepare when
    # a config names one (EGRA's model.pretrained_workdir); a model reads them here, never from files
    pretrained_items: PretrainedItems | None = None

    def __post_init__(self) -> None:
        for field in ("num_users", "num_items"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_ID:
                raise DataError(f"{field}: expected an integer in [1, 2**31), got {value!r}")
            object.__setattr__(self, field, int(value))
        for split in SPLITS:
            object.__setattr__(self, split, _as_pairs(split, getattr(self, split), self.num_users, self.num_items))
        if len(self.train) == 0:
            raise DataError(f"dataset {self.name!r}: the train split is empty")
        keys = np.sort(np.concatenate([pair_keys(getattr(self, split), self.num_items) for split in SPLITS]))
        if np.any(keys[1:] == keys[:-1]):
            raise DataError(f"dataset {self.name!r}: a (user, item) pair occurs more than once across the splits")
        object.__setattr__(self, "features", _as_features(self.features, self.num_items))
        if self.item_category is not None:
            object.__setattr__(self, "item_category", _as_category(self.item_category, self.num_items))
        for field, count in (("user_names", self.num_users), ("item_names", self.num_items)):
            names = getattr(self, field)
            if names is not None:
                names = _read_only(np.asarray(names, dtype=str))
                if names.shape != (count,):
                    raise DataError(f"dataset {self.name!r}: {field} has shape {names.shape}, expected ({count},)")
                object.__setattr__(self, field, names)
        if self.category_names is not None:
            if self.item_category is None or len(self.category_names) <= int(self.item_category.max()):
                raise DataError(f"dataset {self.name!r}: category_names must name every category id of item_category")
            object.__setattr__(self, "category_names", _read_only(np.asarray(self.category_names, dtype=str)))
        for modality, missing in self.missing_features.items():
            missing = np.asarray(missing)
            if modality not in self.features or missing.dtype != bool or missing.shape != (self.num_items,):
                raise DataError(f"dataset {self.name!r}: missing_features[{modality!r}] must be a bool [{self.num_items}] "
                                f"mask of a modality among {sorted(self.features)}")
        if self.cold_items is not None:
            object.__setattr__(self, "cold_items", as_cold_items(self.cold_items, self.num_items))
        if self.pretrained_items is not None and len(self.pretrained_items.vectors) != self.num_items:
            raise DataError(f"{self.pretrained_items.workdir}: its pretrained item vectors cover "
                            f"{len(self.pretrained_items.vectors)} items, dataset {self.name!r} has {self.num_items}")
        if self.sequences is not None and (self.sequences.num_users != self.num_users
                                           or self.sequences.num_items != self.num_items):
            raise DataError(f"dataset {self.name!r}: its sequences cover {self.sequences.num_users} users and "
                            f"{self.sequences.num_items} items, the dataset {self.num_users} and {self.num_items}")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the feature modalities, sorted."""
        return tuple(sorted(self.features))

    def interaction_csr(self, splits: Iterable[str] = ("train",)) -> tuple[np.ndarray, np.ndarray]:
        """(indptr int64 [num_users + 1], indices int32): each user's items in `splits`, sorted."""
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise DataError(f"splits: expected names among {SPLITS}, got {unknown}")
        pairs = np.concatenate([getattr(self, split) for split in SPLITS if split in set(splits)]
                               or [np.zeros((0, 2), np.int32)])
        users, items = pairs[:, 0], pairs[:, 1]
        order = np.lexsort((items, users))
        indptr = np.zeros(self.num_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=self.num_users), out=indptr[1:])
        return _read_only(indptr), _read_only(items[order].astype(np.int32))

    @functools.cached_property
    def _train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        return self.interaction_csr(("train",))

    def train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr int64 [num_users + 1], indices int32): each user's train items, sorted; cached."""
        return self._train_csr

    @functools.cached_property
    def _user_train_counts(self) -> np.ndarray:
        return _read_only(np.bincount(self.train[:, 0], minlength=self.num_users).astype(np.int64))

    def user_train_counts(self) -> np.ndarray:
        """Number of train interactions per user, int64 [num_users]; cached, read-only."""
        return self._user_train_counts

    @functools.cached_property
    def _item_train_counts(self) -> np.ndarray:
        return _read_only(np.bincount(self.train[:, 1], minlength=self.num_items).astype(np.int64))

    def item_train_counts(self) -> np.ndarray:
        """Number of train interactions per item, int64 [num_items]; cached, read-only."""
        return self._item_train_counts

    def eval_pairs(self, split: str) -> np.ndarray:
        """The split's pairs of users with >= 1 train interaction (others cannot be ranked fairly)."""
        if split not in EVAL_SPLITS:
            raise DataError(f"eval split: expected one of {EVAL_SPLITS}, got {split!r}")
        pairs = getattr(self, split)
        kept = pairs[self.user_train_counts()[pairs[:, 0]] > 0]
        if len(kept) == 0:
            raise DataError(f"dataset {self.name!r}: split {split!r} has no user with a train interaction")
        return kept

    def summary(self) -> str:
        """A multi-line human summary: sizes, splits, modalities, users/items without train interactions."""
        user_counts, item_counts = self.user_train_counts(), self.item_train_counts()
        no_train_users = user_counts == 0
        lines = [
            f"dataset {self.name!r} from {self.source or '?'} (sha256 {self.checksum[:12] or '?'})",
            f"  users {self.num_users}, items {self.num_items}",
            f"  train {len(self.train)}, valid {len(self.valid)}, test {len(self.test)} (user, item) pairs",
        ]
        if self.features:
            dims = ", ".join(f"{name} {array.shape[1]}" for name, array in self.features.items())
            lines.append(f"  modalities: {dims}")
        else:
            lines.append("  modalities: none")
        if self.item_category is not None:
            lines.append(f"  item categories: {len(np.unique(self.item_category))} distinct")
        excluded = {split: int(np.sum(no_train_users[getattr(self, split)[:, 0]])) for split in EVAL_SPLITS}
        lines.append(f"  users without a train interaction: {int(no_train_users.sum())} "
                     f"(their {excluded['valid']} valid / {excluded['test']} test rows are not evaluated)")
        lines.append(f"  items without a train interaction (cold): {int(np.sum(item_counts == 0))} "
                     "(kept in ranking and ground truth)")
        return "\n".join(lines)


def log_dataset_report(dataset: InteractionDataset) -> None:
    """Logs the dataset's counts and, explicitly, what evaluation leaves out and why (INFO)."""
    user_counts, item_counts = dataset.user_train_counts(), dataset.item_train_counts()
    no_train_users = user_counts == 0
    logger.info("dataset %r (%s): %d users, %d items; train %d, valid %d, test %d; modalities %s",
                dataset.name, dataset.source, dataset.num_users, dataset.num_items, len(dataset.train),
                len(dataset.valid), len(dataset.test),
                ", ".join(f"{n} ({a.shape[1]}-d)" for n, a in dataset.features.items()) or "none")
    excluded = {split: int(np.sum(no_train_users[getattr(dataset, split)[:, 0]])) for split in EVAL_SPLITS}
    logger.info("%d users have no train interaction; their %d valid and %d test rows are excluded from "
                "evaluation", int(no_train_users.sum()), excluded["valid"], excluded["test"])
    logger.info("%d items have no train interaction (cold items); they stay in the ranking and the ground truth",
                int(np.sum(item_counts == 0)))
