"""Sequence data: order kept with repeats, leave-one-out views, RecBole's prefix instances and windows, and
one-line errors for bad order columns."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mmjax.data import load_mmrec_dir, make_synthetic
from mmjax.data.sequences import (PAD_ID, UserSequences, history_windows, query_positions, training_instances,
                                  whole_history_positions)
from mmjax.errors import DataError

SCIENTIFIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "scientific"


def write_inter(directory: Path, rows: list[tuple], header: str = "userID\titemID\tseq_pos\tx_label") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = header + "\n" + "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
    (directory / "toy.inter").write_text(text)
    return directory


# user 0 in time order: 3 1 3 2 (labels 0 0 1 2); user 1: 0 4 2 1 0 (0 0 0 1 2); rows shuffled in the file
ROWS = [(0, 3, 2, 1), (0, 1, 1, 0), (0, 3, 0, 0), (0, 2, 3, 2),  # shuffled file order, a repeated item
        (1, 0, 0, 0), (1, 4, 1, 0), (1, 2, 2, 0), (1, 1, 3, 1), (1, 0, 4, 2)]


def test_order_and_repeats_are_kept(tmp_path):
    dataset = load_mmrec_dir(write_inter(tmp_path / "toy", ROWS))
    sequences = dataset.sequences
    assert sequences.order_column == "seq_pos"
    np.testing.assert_array_equal(sequences.indptr, [0, 4, 9])
    np.testing.assert_array_equal(sequences.items, [3, 1, 3, 2, 0, 4, 2, 1, 0])
    np.testing.assert_array_equal(sequences.labels, [0, 0, 1, 2, 0, 0, 0, 1, 2])
    # the pair splits of the graph models keep one row per pair: (0, 3) and (1, 0) once each, as train
    assert len(dataset.train) + len(dataset.valid) + len(dataset.test) == 7 and len(dataset.test) == 1
    users, positions = training_instances(sequences)
    np.testing.assert_array_equal(users, [0, 1, 1])  # every train interaction after the user's first
    np.testing.assert_array_equal(sequences.items[positions], [1, 4, 2])
    windows = history_windows(sequences, users, positions, 3)
    np.testing.assert_array_equal(windows, [[PAD_ID, PAD_ID, 4], [PAD_ID, PAD_ID, 1], [PAD_ID, 1, 5]])
    valid_users, valid_positions = query_positions(sequences, "valid")
    test_users, test_positions = query_positions(sequences, "test")
    np.testing.assert_array_equal(sequences.items[valid_positions], [3, 1])
    np.testing.assert_array_equal(sequences.items[test_positions], [2, 0])
    # the test history is everything before the test item, valid item included; shifted ids, left-padded
    np.testing.assert_array_equal(history_windows(sequences, test_users, test_positions, 5),
                                  [[PAD_ID, PAD_ID, 4, 2, 4], [PAD_ID, 1, 5, 3, 2]])
    whole = history_windows(sequences, np.array([0]), whole_history_positions(sequences, np.array([0])), 5)
    np.testing.assert_array_equal(whole, [[PAD_ID, 4, 2, 4, 3]])


def test_timestamps_order_with_ties_in_file_order(tmp_path):
    rows = [(0, 1, "20.5", 0), (0, 2, "10", 0), (0, 3, "20.5", 1), (0, 4, "30", 2)]
    dataset = load_mmrec_dir(write_inter(tmp_path / "t", rows, "userID\titemID\ttimestamp\tx_label"))
    np.testing.assert_array_equal(dataset.sequences.items, [2, 1, 3, 4])
    assert dataset.sequences.order_column == "timestamp"


def test_without_an_order_column_there_are_no_sequences(tmp_path):
    dataset = load_mmrec_dir(write_inter(tmp_path / "n", [(0, 1, 0), (0, 2, 1), (0, 3, 2)],
                                         "userID\titemID\tx_label"))
    assert dataset.sequences is None


@pytest.mark.parametrize("rows,header,message", [
    ([(0, 1, 0, 0), (0, 2, 0, 1)], None, r"toy.inter lines 2 and 3: user 0 has seq_pos 0 twice"),
    ([(0, 1, 0, 0), (0, 2, "x", 1)], None, r"toy.inter line 3: seq_pos 'x' is not a non-negative integer"),
    ([(0, 1, 0, 0), (0, 2, "nan", 1)], "userID\titemID\ttimestamp\tx_label", r"line 3: timestamp 'nan' is not a finite"),
    ([(0, 1, 0, 2), (0, 2, 1, 0)], None, r"user 0's x_label in seq_pos order is not leave-one-out"),
    ([(0, 1, 0, 0), (0, 2, 1, 1), (0, 3, 2, 1)], None, r"user 0's x_label in seq_pos order is not leave-one-out"),
])
def test_bad_order_columns_are_one_line_errors(tmp_path, rows, header, message):
    with pytest.raises(DataError, match=message):
        load_mmrec_dir(write_inter(tmp_path / "toy", rows, header or "userID\titemID\tseq_pos\tx_label"))


def test_window_length_below_two_is_refused():
    sequences = UserSequences(indptr=np.array([0, 3]), items=np.array([0, 1, 2]), labels=np.array([0, 1, 2]),
                              num_items=3)
    with pytest.raises(DataError, match="model.max_len: expected an int >= 2"):
        history_windows(sequences, np.array([0]), np.array([2]), 1)


def test_synthetic_sequences_plant_a_next_item_structure():
    dataset = make_synthetic(num_users=400, num_items=200, sequential=True)
    sequences = dataset.sequences
    assert len(query_positions(sequences, "test")[0]) == 400 == len(query_positions(sequences, "valid")[0])
    users, positions = training_instances(sequences)
    assert len(users) == len(sequences.items) - 3 * 400
    assert dataset.item_category is not None and len(dataset.modalities) >= 2
    # the order carries information the item set does not: predicting the test item from the last item
    # (first-order transitions of the train instances) beats item-to-item collaborative filtering over the
    # whole history (users' train item sets, no order), and both beat popularity
    test_users, test_positions = query_positions(sequences, "test")
    target, last = sequences.items[test_positions], sequences.items[test_positions - 1]
    n = dataset.num_items
    transitions = np.zeros((n, n))
    np.add.at(transitions, (sequences.items[positions - 1], sequences.items[positions]), 1.0)
    train = sequences.labels == 0
    per_user = np.zeros((400, n))
    np.add.at(per_user, (sequences.user_of_position()[train], sequences.items[train]), 1.0)
    cooccurrence = per_user.T @ per_user
    np.fill_diagonal(cooccurrence, 0.0)
    windows = history_windows(sequences, test_users, test_positions, 50)
    bag = np.stack([cooccurrence[w[w > 0] - 1].sum(axis=0) for w in windows])
    popularity = np.bincount(sequences.items[sequences.labels == 0], minlength=n).astype(float)

    def hit_rate(scores):
        top = np.argsort(-(scores + 1e-6 * popularity), axis=1)[:, :10]
        return float((top == target[:, None]).any(axis=1).mean())

    order_aware, order_free = hit_rate(transitions[last]), hit_rate(bag)
    assert order_aware > order_free + 0.15 and order_free > hit_rate(np.tile(popularity, (400, 1)))


@pytest.mark.skipif(not SCIENTIFIC.is_dir(), reason="../shared/data/scientific is not here")
def test_scientific_keeps_every_valid_and_test_target():
    dataset = load_mmrec_dir(SCIENTIFIC)
    sequences = dataset.sequences
    assert len(sequences.items) == 59_427
    for split in ("valid", "test"):
        users, positions = query_positions(sequences, split)
        assert len(users) == 8_442 == len(np.unique(users))
    # RecBole's prefix instances: sum over users of (n_u - 3)
    assert len(training_instances(sequences)[0]) == 59_427 - 3 * 8_442 == 34_101
    assert dataset.item_category.shape == (4_385,) and dataset.modalities == ("text",)
