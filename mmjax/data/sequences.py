"""Users' interactions in time order, with repeats, and the leave-one-out views of the sequential protocol.

`UserSequences` keeps every interaction of every user sorted by time (seq_pos or timestamp; ties in a
timestamp keep file order), each with its split label. The protocol (specs/sequential-protocol.md §2, as
RecBole builds it) reads it through three pieces:

- `training_instances`: one instance per train interaction after a user's first: its history is every
  train interaction before it (RecBole's prefix augmentation; Σ_u (n_u - 3) instances under leave-one-out).
- `query_positions`: where each user's valid (or test) target stands; its history is everything before it.
- `history_windows`: the last `max_len` items before each position, left-padded, as ids shifted by one
  so that PAD_ID = 0 is the padding (model item id = dataset item id + 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmjax.errors import DataError

PAD_ID = 0  # the padding id of history windows; a dataset item i appears as i + 1
LABELS = {"train": 0, "valid": 1, "test": 2}


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.setflags(write=False)
    return view


@dataclasses.dataclass(frozen=True, eq=False)
class UserSequences:
    """Every user's interactions in time order: user u's are items[indptr[u]:indptr[u + 1]].

    labels: 0 train, 1 valid, 2 test per interaction. Leave-one-out layout, checked: a user's train
    interactions come first, then at most one valid and at most one test interaction, test last.
    """

    indptr: np.ndarray  # int64 [num_users + 1]
    items: np.ndarray  # int32 [n]
    labels: np.ndarray  # int8 [n]
    num_items: int
    order_column: str = ""  # where the order came from: 'seq_pos', 'timestamp' or 'generated'

    def __post_init__(self) -> None:
        indptr = np.asarray(self.indptr, dtype=np.int64)
        items, labels = np.asarray(self.items), np.asarray(self.labels)
        if indptr.ndim != 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(items):
            raise DataError("sequences: expected a non-decreasing indptr from 0 to the number of interactions")
        if items.shape != labels.shape or items.ndim != 1:
            raise DataError(f"sequences: items {items.shape} and labels {labels.shape} must be equal 1-D arrays")
        if len(items) and (items.min() < 0 or items.max() >= self.num_items):
            raise DataError(f"sequences: item ids must lie in [0, {self.num_items})")
        if len(labels) and not np.isin(labels, (0, 1, 2)).all():
            raise DataError("sequences: labels must be 0 (train), 1 (valid) or 2 (test)")
        object.__setattr__(self, "indptr", _read_only(indptr))
        object.__setattr__(self, "items", _read_only(items.astype(np.int32, copy=False)))
        object.__setattr__(self, "labels", _read_only(labels.astype(np.int8, copy=False)))
        bad = leave_one_out_violation(self.indptr, self.labels)
        if bad is not None:
            raise DataError(f"sequences: user {bad}'s interactions are not leave-one-out in time order (train "
                            "first, then at most one valid, then at most one test as the last)")

    @property
    def num_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Interactions per user, int64 [num_users]."""
        return np.diff(self.indptr)

    def user_of_position(self) -> np.ndarray:
        """The user of every interaction, int32 [n]."""
        return np.repeat(np.arange(self.num_users, dtype=np.int32), self.lengths)


def leave_one_out_violation(indptr: np.ndarray, labels: np.ndarray) -> int | None:
    """The first user whose labels in time order are not 0...0 [1] [2], or None."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return None
    users = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    same_user = users[1:] == users[:-1]
    # within a user labels never decrease, and valid and test appear at most once each
    step = labels[1:] - labels[:-1]
    bad = same_user & ((step < 0) | ((step == 0) & (labels[1:] > 0)))
    if bad.any():
        return int(users[1:][np.argmax(bad)])
    return None


def sort_into_sequences(users: np.ndarray, items: np.ndarray, labels: np.ndarray, order: np.ndarray,
                        num_users: int, num_items: int, order_column: str,
                        rows_named: np.ndarray | None = None, file_name: str = "") -> UserSequences:
    """UserSequences from rows in any order: sorted by (user, order, row), stable.

    With order_column 'seq_pos' two rows of one user with the same position are an error (the order is
    ambiguous); with a timestamp, ties keep the rows' file order (as RecBole's stable sort does).
    `rows_named` gives each row's line number for the error message.
    """
    rows = np.arange(len(users))
    sort = np.lexsort((rows, order, users))
    users_sorted, order_sorted = users[sort], order[sort]
    if order_column == "seq_pos":
        tie = (users_sorted[1:] == users_sorted[:-1]) & (order_sorted[1:] == order_sorted[:-1])
        if tie.any():
            first = int(np.argmax(tie))
            lines = rows_named if rows_named is not None else rows + 1
            raise DataError(f"{file_name} lines {lines[sort[first]]} and {lines[sort[first + 1]]}: user "
                            f"{users_sorted[first]} has seq_pos {order_sorted[first]} twice; positions must be "
                            "distinct within a user")
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=indptr[1:])
    bad = leave_one_out_violation(indptr, labels[sort])
    if bad is not None:
        raise DataError(f"{file_name}: user {bad}'s x_label in {order_column} order is not leave-one-out "
                        "(expected its train rows first, then at most one valid, then at most one test as the last)")
    return UserSequences(indptr=indptr, items=items[sort], labels=labels[sort], num_items=num_items,
                         order_column=order_column)


def training_instances(sequences: UserSequences) -> tuple[np.ndarray, np.ndarray]:
    """(user int32 [m], position int64 [m]): every train interaction that has a train interaction before it.

    The instance's target is items[position]; its history is the user's interactions before it.
    """
    users = sequences.user_of_position()
    starts = sequences.indptr[users]
    positions = np.arange(len(users), dtype=np.int64)
    keep = (sequences.labels == LABELS["train"]) & (positions > starts)
    return users[keep], positions[keep]


def query_positions(sequences: UserSequences, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(user int32 [q], position int64 [q]) of each user's `split` ('valid' or 'test') target with a
    non-empty history; users whose target is their first interaction cannot be queried and are left out."""
    users = sequences.user_of_position()
    positions = np.flatnonzero(sequences.labels == LABELS[split]).astype(np.int64)
    positions = positions[positions > sequences.indptr[users[positions]]]
    return users[positions], positions


def history_windows(sequences: UserSequences, users: np.ndarray, positions: np.ndarray,
                    max_len: int) -> np.ndarray:
    """int32 [len(positions), max_len]: the last max_len items of user users[r] before positions[r],
    shifted by one (item i -> i + 1), left-padded with PAD_ID; the most recent item is last."""
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 2:
        raise DataError(f"model.max_len: expected an int >= 2 (the history window length), got {max_len!r}")
    positions = np.asarray(positions, dtype=np.int64)
    starts = sequences.indptr[np.asarray(users, dtype=np.int64)]
    offsets = np.arange(-max_len, 0)[None, :]  # the window covers positions p - max_len .. p - 1
    index = positions[:, None] + offsets
    valid = index >= starts[:, None]
    if len(sequences.items) == 0:
        return np.full(index.shape, PAD_ID, np.int32)
    shifted = sequences.items[np.where(valid, index, 0)].astype(np.int32) + 1
    return np.where(valid, shifted, PAD_ID).astype(np.int32)


def whole_history_positions(sequences: UserSequences, users: np.ndarray) -> np.ndarray:
    """The position just past each user's last interaction: its window is the user's whole recent history."""
    return sequences.indptr[np.asarray(users, dtype=np.int64) + 1]


def pack_next_fit(lengths: np.ndarray, row_length: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(row int64 [m], offset int64 [m], rows): instances placed in order, each in the current row if it
    still fits, else at the start of a new one (next fit); every length must be in [1, row_length]."""
    rows, offsets = np.zeros(len(lengths), np.int64), np.zeros(len(lengths), np.int64)
    row, fill = 0, 0
    for index, length in enumerate(np.asarray(lengths).tolist()):
        if fill + length > row_length:
            row, fill = row + 1, 0
        rows[index], offsets[index] = row, fill
        fill += length
    return rows, offsets, row + 1 if len(lengths) else 0


@dataclasses.dataclass(frozen=True)
class PackedRows:
    """Histories packed several to a row, so a batch of short histories costs what their tokens cost.

    tokens: int32 [R, L] item ids shifted by one (PAD_ID where no history stands); segments: int32 [R, L]
    1, 2, ... numbering the histories of a row (0 = padding), so attention stays within a history;
    positions: int32 [R, L] each token's index from its history's start (RecBole's position ids);
    last: int32 [m] the flat index (row * L + column) of each history's most recent token.
    """

    tokens: np.ndarray
    segments: np.ndarray
    positions: np.ndarray
    last: np.ndarray

    def padded(self, rows: int) -> "PackedRows":
        """The same histories in `rows` rows (>= the rows used), the extra rows padding."""
        extra = rows - len(self.tokens)
        if extra < 0:
            raise ValueError(f"PackedRows.padded: {len(self.tokens)} rows used, {rows} given")
        pad = lambda a: np.pad(a, [(0, extra), (0, 0)])  # noqa: E731 - PAD_ID and segment 0 are both 0
        return PackedRows(tokens=pad(self.tokens), segments=pad(self.segments), positions=pad(self.positions),
                          last=self.last)


def pack_windows(windows: np.ndarray) -> PackedRows:
    """Left-padded windows [m, L] (each with >= 1 item) packed next fit, in order, into as few rows as next
    fit needs (PackedRows.padded adds rows)."""
    windows = np.asarray(windows)
    count, row_length = windows.shape
    lengths = (windows != PAD_ID).sum(axis=1)
    if count and lengths.min() < 1:
        raise DataError("pack_windows: every history must hold at least one item")
    rows, offsets, num_rows = pack_next_fit(lengths, row_length)
    tokens = np.full((num_rows, row_length), PAD_ID, np.int32)
    segments = np.zeros((num_rows, row_length), np.int32)
    positions = np.zeros((num_rows, row_length), np.int32)
    instance = np.repeat(np.arange(count), lengths)
    within = np.arange(len(instance)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    target_rows, target_columns = rows[instance], offsets[instance] + within
    tokens[target_rows, target_columns] = windows[instance, row_length - lengths[instance] + within]
    first_in_row = np.concatenate([[True], rows[1:] != rows[:-1]]) if count else np.zeros(0, bool)
    segment_of = np.arange(count) - np.maximum.accumulate(np.where(first_in_row, np.arange(count), 0)) + 1
    segments[target_rows, target_columns] = segment_of[instance]
    positions[target_rows, target_columns] = within
    last = (rows * row_length + offsets + lengths - 1).astype(np.int32)
    return PackedRows(tokens=tokens, segments=segments, positions=positions, last=last)
