"""mmjax.data: InteractionDataset, the MMRec directory loader and its one-line errors."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmjax.data import InteractionDataset, load_mmrec_dir, log_dataset_report
from mmjax.errors import DataError

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO_ROOT = Path(__file__).resolve().parents[1]

# user 2 has only a valid row (no train interaction); item 3 is never in train; item 4 only has a feature row.
TOY = "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n0\t2\t1\n0\t3\t2\n1\t1\t0\n1\t2\t2\n2\t3\t1\n"


def feature(rows: int = 5, dim: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim))


def write_dir(root: Path, inter: str | bytes | None = TOY, name: str = "toy",
              arrays: dict[str, object] | None = None, raw: dict[str, bytes] | None = None) -> Path:
    """A tiny MMRec directory: <name>.inter, .npy arrays by file name, raw files by name."""
    root.mkdir(parents=True, exist_ok=True)
    if inter is not None:
        data = inter.encode() if isinstance(inter, str) else inter
        (root / f"{name}.inter").write_bytes(data)
    for file_name, array in (arrays or {}).items():
        np.save(root / file_name, array, allow_pickle=True)
    for file_name, data in (raw or {}).items():
        (root / file_name).write_bytes(data)
    return root


def load_error(path: Path) -> str:
    """The DataError message of loading `path` (must be one line)."""
    with pytest.raises(DataError) as info:
        load_mmrec_dir(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- loading


def test_load_toy_directory(tmp_path):
    image = feature(5, 3)
    ds = load_mmrec_dir(write_dir(tmp_path, arrays={"image_feat.npy": image, "text_feat.npy": feature(5, 2, 1)}))
    assert (ds.name, ds.num_users, ds.num_items) == ("toy", 3, 5)  # feature rows > max itemID + 1
    np.testing.assert_array_equal(ds.train, [[0, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(ds.valid, [[0, 2], [2, 3]])
    np.testing.assert_array_equal(ds.test, [[0, 3], [1, 2]])
    assert all(a.dtype == np.int32 for a in (ds.train, ds.valid, ds.test))
    assert ds.modalities == ("image", "text")
    assert ds.features["image"].dtype == np.float32 and ds.features["text"].shape == (5, 2)
    np.testing.assert_allclose(ds.features["image"], image.astype(np.float32))
    assert ds.item_category is None
    assert ds.source == str(tmp_path.resolve()) and len(ds.checksum) == 64


def test_train_csr_counts_and_eval_pairs(tmp_path):
    ds = load_mmrec_dir(write_dir(tmp_path, inter=TOY + "0\t4\t0\n"))
    indptr, indices = ds.train_csr()
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    np.testing.assert_array_equal(indptr, [0, 3, 4, 4])
    np.testing.assert_array_equal(indices, [0, 1, 4, 1])
    assert ds.train_csr()[0] is indptr  # cached
    np.testing.assert_array_equal(ds.item_train_counts(), [1, 2, 0, 0, 1])
    assert ds.item_train_counts().dtype == np.int64
    np.testing.assert_array_equal(ds.eval_pairs("valid"), [[0, 2]])  # user 2 has no train interaction
    np.testing.assert_array_equal(ds.eval_pairs("test"), [[0, 3], [1, 2]])
    assert len(ds.valid) == 2  # the split itself keeps every row


def test_extra_columns_any_order_blank_lines_and_crlf(tmp_path):
    text = ("rating\tx_label\titemID\ttimestamp\tuserID\r\n5.0\t0\t0\t99\t0\r\n\r\n"
            "4.5\t2\t1\t100\t0\r\n3\t0\t1\t7\t1\r\n\r\n")
    ds = load_mmrec_dir(write_dir(tmp_path, inter=text))
    np.testing.assert_array_equal(ds.train, [[0, 0], [1, 1]])
    np.testing.assert_array_equal(ds.test, [[0, 1]])
    assert len(ds.valid) == 0 and ds.valid.shape == (0, 2)
    assert (ds.num_users, ds.num_items) == (2, 2)


def test_item_category(tmp_path):
    ds = load_mmrec_dir(write_dir(tmp_path, arrays={"item_category.npy": np.array([0, 1, 1, 2, 0, 3])}))
    assert ds.num_items == 6  # category rows count as items too
    assert ds.item_category.dtype == np.int32
    np.testing.assert_array_equal(ds.item_category, [0, 1, 1, 2, 0, 3])


def test_checksum_depends_on_bytes_not_location(tmp_path):
    arrays = {"image_feat.npy": feature()}
    first = load_mmrec_dir(write_dir(tmp_path / "a", arrays=arrays)).checksum
    assert load_mmrec_dir(write_dir(tmp_path / "b", arrays=arrays)).checksum == first
    assert load_mmrec_dir(write_dir(tmp_path / "c", arrays={"image_feat.npy": feature(seed=1)})).checksum != first
    assert load_mmrec_dir(write_dir(tmp_path / "d", inter=TOY + "1\t0\t2\n", arrays=arrays)).checksum != first


def test_arrays_are_read_only(tmp_path):
    ds = load_mmrec_dir(write_dir(tmp_path, arrays={"image_feat.npy": feature()}))
    for array in (ds.train, ds.valid, ds.test, ds.features["image"], ds.train_csr()[1], ds.item_train_counts()):
        with pytest.raises(ValueError):
            array[0] = 0


def test_duplicates_removed_and_logged(tmp_path, caplog):
    text = "userID\titemID\tx_label\n0\t1\t2\n0\t0\t0\n0\t1\t0\n0\t1\t1\n0\t1\t0\n1\t0\t2\n1\t0\t1\n1\t1\t0\n"
    with caplog.at_level(logging.INFO):
        ds = load_mmrec_dir(write_dir(tmp_path, inter=text))
    np.testing.assert_array_equal(ds.train, [[0, 0], [0, 1], [1, 1]])  # train wins, file order kept
    np.testing.assert_array_equal(ds.valid, [[1, 0]])  # valid wins over test
    assert len(ds.test) == 0
    assert "removed 4 duplicate (user, item) rows" in caplog.text and "toy.inter" in caplog.text


def test_cold_users_and_items_logged_and_kept(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        ds = load_mmrec_dir(write_dir(tmp_path, arrays={"image_feat.npy": feature()}))
    assert "1 users have no train interaction; their 1 valid and 0 test rows are excluded" in caplog.text
    assert "3 items have no train interaction (cold items)" in caplog.text  # items 2, 3, 4
    assert ds.num_users == 3 and [2, 3] in ds.valid.tolist()
    summary = ds.summary()
    assert "users without a train interaction: 1" in summary and "cold): 3" in summary
    assert "image 3" in summary and "train 3, valid 2, test 2" in summary


def test_log_dataset_report_can_be_called_directly(tmp_path, caplog):
    ds = load_mmrec_dir(write_dir(tmp_path))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        log_dataset_report(ds)
    assert "3 users, 4 items" in caplog.text and "excluded from evaluation" in caplog.text


def test_eval_pairs_errors(tmp_path):
    ds = load_mmrec_dir(write_dir(tmp_path))
    with pytest.raises(DataError, match="expected one of"):
        ds.eval_pairs("train")
    only_cold_test = "userID\titemID\tx_label\n0\t0\t0\n0\t1\t1\n1\t1\t2\n"
    ds = load_mmrec_dir(write_dir(tmp_path / "b", inter=only_cold_test))
    with pytest.raises(DataError, match="split 'test' has no user with a train interaction"):
        ds.eval_pairs("test")


def test_data_package_does_not_import_jax():
    code = "import sys, mmjax.data; assert 'jax' not in sys.modules, 'jax imported'"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT)


# ---------------------------------------------------------------------------------------------- bad input

HEADER = "userID\titemID\tx_label\n"


def bad_npy() -> bytes:
    return b"this is not a numpy file"


# name -> (directory builder(tmp_path) -> path, fragments expected in the one-line message)
BAD_INPUT = {
    "missing_dir": (lambda p: p / "nope", ["nope", "does not exist"]),
    "not_a_dir": (lambda p: write_dir(p, raw={"file": b"x"}) / "file", ["file", "is not a directory"]),
    "no_inter": (lambda p: write_dir(p, inter=None, arrays={"image_feat.npy": feature()}), ["no .inter file"]),
    "two_inter": (lambda p: write_dir(p, raw={"other.inter": TOY.encode()}),
                  ["found 2 .inter files", "other.inter", "toy.inter"]),
    "empty_file": (lambda p: write_dir(p, inter=""), ["toy.inter is empty", "userID, itemID, x_label"]),
    "blank_file": (lambda p: write_dir(p, inter="\n \n"), ["toy.inter is empty"]),
    "missing_columns": (lambda p: write_dir(p, inter="userID\titem\n0\t0\n"),
                        ["toy.inter line 1", "missing column(s) 'itemID'",
                         "found columns 'userID', 'item'"]),
    "duplicate_column": (lambda p: write_dir(p, inter="userID\titemID\tx_label\titemID\n0\t0\t0\t1\n"),
                         ["line 1", "'itemID' appears more than once"]),
    "short_row": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n0\t1\n"),
                  ["toy.inter line 3", "expected 3 tab-separated fields", "found 2"]),
    "long_row": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n\n0\t1\t0\t9\n"),
                 ["toy.inter line 4", "expected 3", "found 4"]),
    "space_separated": (lambda p: write_dir(p, inter="userID itemID x_label\n0 0 0\n"),
                        ["missing column(s)", "found columns 'userID itemID x_label'"]),
    "user_not_int": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\nu1\t0\t0\n"),
                     ["toy.inter line 3: userID 'u1' is not a non-negative integer"]),
    "item_negative": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n0\t-1\t0\n"),
                      ["toy.inter line 3: itemID '-1' is not a non-negative integer"]),
    "item_float": (lambda p: write_dir(p, inter=HEADER + "0\t1.5\t0\n"), ["line 2: itemID '1.5'"]),
    "item_arabic_digit": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n1\t\u0663\t0\n"),
                          ["line 3: itemID '\u0663'"]),
    "item_empty": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n1\t\t0\n"), ["line 3: itemID ''"]),
    "user_too_large": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n3000000000\t0\t0\n"),
                       ["line 3: userID '3000000000'", "below 2**31"]),
    "label_3": (lambda p: write_dir(p, inter=HEADER + "0\t0\t0\n0\t1\t3\n"),
                ["toy.inter line 3: x_label '3' is not 0 (train), 1 (valid) or 2 (test)"]),
    "label_text": (lambda p: write_dir(p, inter=HEADER + "0\t0\ttrain\n"), ["line 2: x_label 'train'"]),
    "not_utf8": (lambda p: write_dir(p, inter=HEADER.encode() + b"0\t0\t0\n0\t\xff\t0\n"),
                 ["toy.inter line 3: not valid UTF-8"]),
    "no_train_rows": (lambda p: write_dir(p, inter=HEADER + "0\t0\t1\n0\t1\t2\n"),
                      ["toy.inter", "train split is empty", "x_label 0"]),
    "header_only": (lambda p: write_dir(p, inter=HEADER), ["train split is empty"]),
    "feature_1d": (lambda p: write_dir(p, arrays={"image_feat.npy": np.zeros(5)}),
                   ["image_feat.npy", "expected a 2-D array", "(5,)"]),
    "feature_3d": (lambda p: write_dir(p, arrays={"image_feat.npy": np.zeros((5, 2, 2))}),
                   ["image_feat.npy", "2-D", "(5, 2, 2)"]),
    "feature_no_columns": (lambda p: write_dir(p, arrays={"image_feat.npy": np.zeros((5, 0))}),
                           ["image_feat.npy", "dim >= 1"]),
    "feature_strings": (lambda p: write_dir(p, arrays={"image_feat.npy": np.full((5, 2), "a")}),
                        ["image_feat.npy", "expected a float or integer array", "<U1"]),
    "feature_bool": (lambda p: write_dir(p, arrays={"image_feat.npy": np.ones((5, 2), bool)}),
                     ["image_feat.npy", "float or integer", "bool"]),
    "feature_object": (lambda p: write_dir(p, arrays={"image_feat.npy": np.array([[1, None]] * 5, dtype=object)}),
                       ["image_feat.npy", "cannot be read as a .npy array"]),
    "feature_garbage": (lambda p: write_dir(p, raw={"image_feat.npy": bad_npy()}),
                        ["image_feat.npy: not a .npy file"]),
    "feature_truncated": (lambda p: write_dir(p, raw={"image_feat.npy": npy_bytes(feature())[:-7]}),
                          ["image_feat.npy", "cannot be read"]),
    "feature_rows_differ": (lambda p: write_dir(p, arrays={"image_feat.npy": feature(5),
                                                           "audio_feat.npy": feature(6)}),
                            ["disagree on the number of rows", "audio_feat.npy 6", "image_feat.npy 5"]),
    "item_beyond_features": (lambda p: write_dir(p, inter=TOY + "1\t7\t0\n",
                                                 arrays={"image_feat.npy": feature(5)}),
                             ["toy.inter: itemID 7 at line 9 is beyond the 5 rows of image_feat.npy"]),
    "feature_nan": (lambda p: write_dir(p, arrays={"image_feat.npy": with_value(feature(), 3, np.nan)}),
                    ["image_feat.npy row 3", "NaN or inf"]),
    "feature_inf": (lambda p: write_dir(p, arrays={"image_feat.npy": with_value(feature(), 1, -np.inf)}),
                    ["image_feat.npy row 1", "NaN or inf"]),
    "feature_overflows_float32": (lambda p: write_dir(p, arrays={"image_feat.npy":
                                                                 with_value(feature(), 2, 1e300)}),
                                  ["image_feat.npy row 2", "beyond float32"]),
    "empty_modality_name": (lambda p: write_dir(p, arrays={"_feat.npy": feature()}),
                            ["_feat.npy", "name", "empty"]),
    "category_float": (lambda p: write_dir(p, arrays={"item_category.npy": np.zeros(5)}),
                       ["item_category.npy", "expected an integer array", "float64"]),
    "category_2d": (lambda p: write_dir(p, arrays={"item_category.npy": np.zeros((5, 1), int)}),
                    ["item_category.npy", "1-D", "(5, 1)"]),
    "category_negative": (lambda p: write_dir(p, arrays={"item_category.npy": np.array([0, 1, -1, 0, 0])}),
                          ["item_category.npy row 2", "category -1"]),
    "category_rows_differ": (lambda p: write_dir(p, arrays={"item_category.npy": np.zeros(6, int),
                                                            "image_feat.npy": feature(5)}),
                             ["disagree on the number of items", "image_feat.npy 5", "item_category.npy 6"]),
    "item_beyond_category": (lambda p: write_dir(p, arrays={"item_category.npy": np.zeros(3, int)}),
                             ["itemID 3 at line 5 is beyond the 3 rows of item_category.npy"]),
}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def with_value(array: np.ndarray, row: int, value: float) -> np.ndarray:
    array = array.copy()
    array[row, -1] = value
    return array


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_raises_one_line_data_error(tmp_path, case):
    build, fragments = BAD_INPUT[case]
    message = load_error(build(tmp_path))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unreadable_feature_file(tmp_path):
    path = write_dir(tmp_path, arrays={"image_feat.npy": feature()})
    (path / "image_feat.npy").chmod(0)
    try:
        if os.access(path / "image_feat.npy", os.R_OK):
            pytest.skip("running as a user that can read any file")
        assert "image_feat.npy: cannot be read" in load_error(path)
    finally:
        (path / "image_feat.npy").chmod(0o644)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------------------------------------- the dataclass


def make(**overrides) -> InteractionDataset:
    fields = dict(name="t", num_users=2, num_items=3, train=np.array([[0, 0], [1, 1]]),
                  valid=np.zeros((0, 2), int),
                  test=np.array([[0, 2]]), features={"b": np.ones((3, 2)), "a": np.zeros((3, 1), np.float32)})
    return InteractionDataset(**{**fields, **overrides})


def test_dataset_normalises_types_and_sorts_modalities():
    source = np.array([[0, 0], [1, 1]], dtype=np.int64)
    ds = make(train=source)
    assert ds.train.dtype == np.int32 and ds.features["b"].dtype == np.float32
    assert ds.modalities == ("a", "b") and list(ds.features) == ["a", "b"]
    source[0, 0] = 1  # the caller's array stays writable
    assert ds.num_users == 2 and ds.item_category is None


@pytest.mark.parametrize("overrides, fragment", [
    (dict(num_users=0), "num_users"),
    (dict(num_items=2.5), "num_items"),
    (dict(train=np.array([0, 1])), "train: expected an array of (user, item) pairs"),
    (dict(train=np.array([[0.0, 1.0]])), "train: expected integer"),
    (dict(test=np.array([[2, 0]])), "test row 0: user id 2 is outside [0, 2)"),
    (dict(valid=np.array([[0, -1]])), "valid row 0: item id -1"),
    (dict(train=np.zeros((0, 2), int)), "train split is empty"),
    (dict(test=np.array([[0, 0]])), "more than once"),
    (dict(features={"a": np.ones((2, 2))}), "features['a']: expected shape [3, dim >= 1]"),
    (dict(features={"a": np.array([[1.0], [np.nan], [0.0]])}), "features['a'] row 1: contains NaN"),
    (dict(features={"": np.ones((3, 1))}), "non-empty strings"),
    (dict(item_category=np.array([0, 1])), "item_category: expected shape [3]"),
    (dict(item_category=np.array([0.0, 1.0, 2.0])), "item_category: expected an integer array"),
])
def test_dataset_rejects_bad_arrays(overrides, fragment):
    with pytest.raises(DataError) as info:
        make(**overrides)
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------------------------- real data


def real_dir(name: str) -> Path:
    path = DATA_ROOT / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def test_real_tiktok(caplog):
    path = real_dir("tiktok")
    start = time.perf_counter()
    with caplog.at_level(logging.INFO):
        ds = load_mmrec_dir(path)
    assert time.perf_counter() - start < 5.0  # ~0.1 s; generous for shared machines
    assert (ds.num_users, ds.num_items) == (9308, 6710)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (59541, 3051, 6130)
    assert ds.modalities == ("audio", "image")
    assert all(ds.features[m].shape == (6710, 128) for m in ds.modalities)
    assert "10 users have no train interaction" in caplog.text
    assert "465 items have no train interaction" in caplog.text
    assert int(np.sum(ds.user_train_counts() == 0)) == 10
    assert len(ds.eval_pairs("test")) < len(ds.test)


def test_real_baby():
    path = real_dir("baby")
    start = time.perf_counter()
    ds = load_mmrec_dir(path)
    assert time.perf_counter() - start < 5.0  # ~0.25 s; generous for shared machines
    assert (ds.num_users, ds.num_items) == (19445, 7050)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (118551, 21682, 20559)
    assert ds.modalities == () and ds.item_category is None


def test_real_scientific(caplog):
    path = real_dir("scientific")
    with caplog.at_level(logging.INFO):
        ds = load_mmrec_dir(path)
    assert (ds.num_users, ds.num_items) == (8442, 4385)
    assert ds.modalities == ("text",) and ds.features["text"].shape == (4385, 384)
    assert ds.item_category is not None and ds.item_category.shape == (4385,)
    # Sequences repeat items: the sequences keep all 59,427 rows, the (user, item) view of the graph models one
    # row per pair, and the log says how many rows repeat a pair.
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 59427 - 291 and len(ds.sequences.items) == 59427
    assert "291 rows repeat a (user, item) pair; the sequences keep them" in caplog.text
