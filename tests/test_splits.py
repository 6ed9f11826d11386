"""Data intake beyond MMRec's x_label: RecBole atomic files, random and leave-one-out splits, k-core."""

import re

import numpy as np
import pytest

from mmjax.data import load_mmrec_dir
from mmjax.data.splits import kcore_keep, leave_one_out_labels, random_labels
from mmjax.errors import ConfigError, DataError


def atomic_dir(path, rows, header="user_id:token\titem_id:token\trating:float\ttimestamp:float"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "toy.inter").write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_random_split_cuts_each_user_by_the_ratios_and_is_seeded():
    users = np.repeat(np.arange(3), [10, 20, 5])
    labels = random_labels(users, (0.8, 0.1, 0.1), seed=0)
    for user, (valid, test) in enumerate([(1, 1), (2, 2), (0, 0)]):  # floor(0.1 n); a 5-row user keeps all
        mine = labels[users == user]
        assert ((mine == 1).sum(), (mine == 2).sum()) == (valid, test)
    assert np.array_equal(labels, random_labels(users, (0.8, 0.1, 0.1), seed=0))
    assert not np.array_equal(labels, random_labels(users, (0.8, 0.1, 0.1), seed=1))


def test_leave_one_out_split_is_the_last_two_in_time_order_ties_in_file_order():
    users = np.array([0, 0, 0, 0, 1, 1, 2])
    order = np.array([3.0, 1.0, 2.0, 3.0, 5.0, 4.0, 0.0])
    # user 0 in time order: rows 1, 2, 0, 3 (the tie at 3.0 keeps file order): row 0 valid, row 3 test
    assert leave_one_out_labels(users, order).tolist() == [1, 0, 0, 2, 2, 0, 0]


def test_kcore_removes_users_and_items_until_every_one_has_k():
    users = np.array([0, 0, 1, 1, 2, 2, 2])
    items = np.array([0, 1, 0, 1, 0, 1, 2])
    # item 2 has one row; without it every user and item has >= 2
    assert kcore_keep(users, items, 2).tolist() == [True] * 6 + [False]
    assert not kcore_keep(users, items, 4).any()


def test_atomic_file_with_tokens_splits_by_time_and_keeps_the_tokens(tmp_path):
    rows = [(f"u{u}", f"item{(u + t) % 7}", 5, 100 * u + t) for u in range(4) for t in range(5)]
    dataset = load_mmrec_dir(atomic_dir(tmp_path / "a", rows))
    assert (dataset.num_users, dataset.num_items) == (4, 7)
    assert dataset.user_names.tolist() == ["u0", "u1", "u2", "u3"]
    assert dataset.item_names[dataset.test[0, 1]] == "item4"  # u0's last (time 4) item
    assert len(dataset.valid) == len(dataset.test) == 4 and dataset.sequences is not None
    random = load_mmrec_dir(tmp_path / "a", split="random", split_ratios=(0.6, 0.2, 0.2), split_seed=3)
    assert len(random.valid) == len(random.test) == 4 and random.sequences is None
    assert random.checksum != dataset.checksum  # the data is the file and how it was cut


def test_atomic_integer_ids_kcore_renumbers_and_names_the_file_ids(tmp_path):
    rows = [(u, i, 1, t) for t, (u, i) in enumerate([(5, 10), (5, 11), (5, 12), (9, 10), (9, 11), (9, 12),
                                                      (7, 13)])]
    dataset = load_mmrec_dir(atomic_dir(tmp_path / "k", rows), kcore=2, split="random")
    # item 13 and user 7 have one row each: both go, and the rest is 2 users x 3 items
    assert (dataset.num_users, dataset.num_items) == (2, 3)
    assert dataset.user_names.tolist() == ["5", "9"] and dataset.item_names.tolist() == ["10", "11", "12"]


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(split="loo"), ConfigError, "data.split"),
    (dict(split_ratios=(0.5, 0.5)), ConfigError, "data.split_ratios"),
    (dict(kcore=-1), ConfigError, "data.kcore"),
    (dict(kcore=50), DataError, "removes every interaction"),
    (dict(split="x_label"), DataError, "no x_label column"),
])
def test_bad_split_settings_are_one_line_errors(tmp_path, kwargs, error, fragment):
    rows = [(f"u{u}", f"i{t}", 1, t) for u in range(3) for t in range(4)]
    with pytest.raises(error, match=fragment):
        load_mmrec_dir(atomic_dir(tmp_path / "e", rows), **kwargs)


def test_leave_one_out_needs_an_order_column(tmp_path):
    rows = [(f"u{u}", f"i{t}") for u in range(3) for t in range(4)]
    with pytest.raises(DataError, match="needs an order column"):
        load_mmrec_dir(atomic_dir(tmp_path / "o", rows, "user_id:token\titem_id:token"), split="leave_one_out")


def write_item_file(path, header, rows):
    (path / "toy.item").write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


def test_recbole_item_file_gives_named_categories_to_token_items(tmp_path):
    rows = [(f"u{u}", f"item{(u + t) % 7}", 5, 100 * u + t) for u in range(4) for t in range(5)]
    folder = atomic_dir(tmp_path / "c", rows)
    # item6 is not listed (category '[none]'); item99 is not in the .inter file (ignored)
    write_item_file(folder, "item_id:token\ttitle:token_seq\tcategories:token_seq",
                    [(f"item{i}", f"title {i}", ["Books Fiction", "Music", "Books"][i % 3]) for i in range(6)]
                    + [("item99", "x", "Toys")])
    dataset = load_mmrec_dir(folder)
    names = dataset.category_names.tolist()
    assert names == ["Books", "Music", "[none]"]  # a token_seq gives its first token
    by_item = {dataset.item_names[i]: names[c] for i, c in enumerate(dataset.item_category)}
    assert by_item == {"item0": "Books", "item1": "Music", "item2": "Books", "item3": "Books", "item4": "Music",
                       "item5": "Books", "item6": "[none]"}
    with_title = load_mmrec_dir(folder, item_category_field="title")
    assert with_title.category_names.tolist() == ["[none]", "title"]  # first tokens of "title <i>"
    assert with_title.checksum != dataset.checksum


def test_recbole_item_file_follows_integer_ids_through_kcore_renumbering(tmp_path):
    rows = [(u, i, 1, t) for t, (u, i) in enumerate([(5, 10), (5, 11), (5, 12), (9, 10), (9, 11), (9, 12),
                                                      (7, 13)])]
    folder = atomic_dir(tmp_path / "k", rows)
    write_item_file(folder, "item_id:token\tclass:token", [("013", "d"), ("012", "c"), ("10", "a"), ("11", "b")])
    dataset = load_mmrec_dir(folder, kcore=2, split="random")
    assert dataset.item_names.tolist() == ["10", "11", "12"]
    assert [dataset.category_names[c] for c in dataset.item_category] == ["a", "b", "c"]


@pytest.mark.parametrize("item_text, kwargs, fragment", [
    ("item_id:token\tcategories:token\ni0\ta\ni0\tb\n", {}, "toy.item line 3: item_id 'i0' is listed a second time"),
    ("item_id:token\ttitle:token_seq\ni0\ta\n", {}, "expected a column among title"),
    ("item_id:token\tcategories:token\ni0\ta\n", dict(item_category_field="brand"), "item_category_field='brand'"),
    ("item_id\tcategories\ni0\ta\n", {}, "expected a RecBole typed header"),
])
def test_bad_item_files_are_one_line_errors(tmp_path, item_text, kwargs, fragment):
    rows = [(f"u{u}", f"i{t}", 1, t) for u in range(3) for t in range(4)]
    folder = atomic_dir(tmp_path / "e", rows)
    (folder / "toy.item").write_text(item_text)
    with pytest.raises(DataError, match=re.escape(fragment)):
        load_mmrec_dir(folder, **kwargs)


def test_item_categories_from_two_files_are_refused(tmp_path):
    rows = [(f"u{u}", f"i{t}", 1, t) for u in range(3) for t in range(4)]
    folder = atomic_dir(tmp_path / "b", rows)
    (folder / "toy.item").write_text("item_id:token\tcategories:token\ni0\ta\n")
    np.save(folder / "item_category.npy", np.zeros(4, np.int64))
    with pytest.raises(DataError, match="both item_category.npy and toy.item"):
        load_mmrec_dir(folder)
