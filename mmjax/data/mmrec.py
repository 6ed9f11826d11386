"""Loader for an MMRec dataset directory: `<name>.inter` + `<modality>_feat.npy` (+ `item_category.npy`).

A RecBole atomic directory works too: `<name>.inter` with a typed header, and an optional `<name>.item`
whose category column (data.item_category_field) gives the item categories, named by their tokens.

An optional order column (`seq_pos`, an integer position, or `timestamp`, a number) makes the loader also
keep every user's interactions in time order, repeats included (`InteractionDataset.sequences`), for the
sequential protocol; the (user, item) pair splits of the graph models keep one row per pair either way.

Parsing is vectorised (baby's 160k lines load in a fraction of a second); when a check fails, the
first offending line is located and reported in one line naming the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from pathlib import Path

import numpy as np

from mmjax.data.dataset import MAX_ID, InteractionDataset, as_cold_items, first_non_finite_row, log_dataset_report
from mmjax.data.sequences import sort_into_sequences
from mmjax.data.splits import check_split, kcore_keep, leave_one_out_labels, random_labels
from mmjax.errors import DataError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("userID", "itemID")  # and x_label (0 train, 1 valid, 2 test) unless data.split makes one
# RecBole's atomic files: typed headers 'user_id:token item_id:token rating:float timestamp:float'
ATOMIC_NAMES = {"user_id": "userID", "item_id": "itemID"}
ORDER_COLUMNS = ("seq_pos", "timestamp")  # the first one present orders each user's interactions
FEATURE_SUFFIX = "_feat.npy"
CATEGORY_FILE = "item_category.npy"
COLD_ITEMS_FILE = "cold_items.npy"  # optional: the items the cold-start protocol treats as cold
# the .item column read as the category when data.item_category_field is 'auto': the first one present
CATEGORY_COLUMNS = ("categories", "category", "class", "genre")
NO_CATEGORY = "[none]"  # the category of an item the .item file does not list
NPY_MAGIC = b"\x93NUMPY"
SPLIT_NAMES = ("train", "valid", "test")
# MMRec's id maps (the dataset's own ids beside the integer ids of the .inter file), tab-separated
ID_MAPS = {"userID": ("u_id_mapping.csv", "u_id_mapping.tsv"), "itemID": ("i_id_mapping.csv", "i_id_mapping.tsv")}
SPARSE_SLACK = 1024  # ids up to 2 x (distinct ids) + this are kept as they are; sparser ones are remapped


def list_files(directory: Path) -> tuple[Path, list[Path], Path | None]:
    """The single .inter file, the sorted *_feat.npy files and the optional item_category.npy (or, for a
    RecBole directory, the optional <name>.item file)."""
    if not directory.exists():
        raise DataError(f"data directory {directory} does not exist")
    if not directory.is_dir():
        raise DataError(f"data directory {directory} is not a directory")
    inter = sorted(p for p in directory.iterdir() if p.suffix == ".inter" and p.is_file())
    if not inter:
        raise DataError(f"{directory}: no .inter file found; expected exactly one <name>.inter")
    if len(inter) > 1:
        raise DataError(f"{directory}: found {len(inter)} .inter files ({', '.join(p.name for p in inter)}); "
                        "expected exactly one")
    features = sorted(p for p in directory.iterdir() if p.name.endswith(FEATURE_SUFFIX) and p.is_file())
    category, item_file = directory / CATEGORY_FILE, inter[0].with_suffix(".item")
    if category.is_file() and item_file.is_file():
        raise DataError(f"{directory}: both {CATEGORY_FILE} and {item_file.name} give item categories; keep one")
    return inter[0], features, category if category.is_file() else item_file if item_file.is_file() else None


def read_bytes(path: Path) -> bytes:
    """The file's bytes; an OS error becomes a DataError naming the file."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"{path.name}: cannot be read ({error.strerror or error})") from None


def files_checksum(files: dict[str, bytes]) -> str:
    """sha256 over each file's name, a NUL, its byte length and its bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "little"))
        digest.update(files[name])
    return digest.hexdigest()


def split_table(file_name: str, data: bytes) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tab-separated text -> (header, fields str [rows, columns], 1-based line numbers of the rows).

    Blank lines are skipped (they carry no data); every other line must have as many fields as the header.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{file_name} line {line}: not valid UTF-8 text") from None
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{file_name} is empty; expected a tab-separated header with columns "
                        f"{', '.join(REQUIRED_COLUMNS)}, x_label (or a data.split) and one row per interaction")
    lines = text.split("\n")
    header = [column.strip() for column in lines[0].split("\t")]
    body = lines[1:]
    while body and not body[-1].strip():  # the usual final newline, without a copy of the body
        body.pop()
    if not body:
        return header, np.empty((0, len(header)), dtype="<U1"), np.empty(0, dtype=np.int64)
    rows = np.array(body)
    keep = np.strings.strip(rows) != ""
    line_numbers = np.flatnonzero(keep) + 2
    if not keep.all():
        rows = rows[keep]
        body = [body[i] for i in line_numbers - 2]
    num_fields = np.strings.count(rows, "\t") + 1
    bad = np.flatnonzero(num_fields != len(header))
    if len(bad):
        raise DataError(f"{file_name} line {line_numbers[bad[0]]}: expected {len(header)} tab-separated fields "
                        f"as in the header, found {num_fields[bad[0]]}")
    if not body:
        return header, np.empty((0, len(header)), dtype="<U1"), line_numbers
    fields = np.array("\t".join(body).split("\t")).reshape(len(body), len(header))
    return header, fields, line_numbers


def column_indices(file_name: str, header: list[str]) -> dict[str, int]:
    """Position of each required column; names the missing ones and those found."""
    duplicated = sorted({c for c in header if header.count(c) > 1 and c in REQUIRED_COLUMNS + ("x_label",)})
    if duplicated:
        raise DataError(f"{file_name} line 1: column {duplicated[0]!r} appears more than once in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{file_name} line 1: header is missing column(s) {', '.join(map(repr, missing))}; "
                        f"found columns {', '.join(map(repr, header))}")
    return {column: header.index(column) for column in REQUIRED_COLUMNS}


def parse_ids(file_name: str, column: str, values: np.ndarray, line_numbers: np.ndarray) -> np.ndarray:
    """Decimal non-negative integers below 2**31 -> int64; the first bad field is reported with its line."""
    stripped = np.strings.strip(values)
    valid = np.strings.isdecimal(stripped) & (np.strings.str_len(stripped) <= 10)
    parsed = np.zeros(len(values), dtype=np.int64)
    if valid.all():
        try:
            ascii_digits = stripped.astype(np.bytes_)
        except UnicodeEncodeError:  # non-ASCII decimal digits such as '٣' are not ids
            valid = np.array([value.isascii() for value in stripped.tolist()])
        else:
            parsed = ascii_digits.astype(np.int64)
            valid = parsed <= MAX_ID
    if not valid.all():
        row = int(np.argmin(valid))
        raise DataError(f"{file_name} line {line_numbers[row]}: {column} {str(values[row])!r} is not a "
                        "non-negative integer below 2**31")
    return parsed


def parse_order(file_name: str, column: str, values: np.ndarray, line_numbers: np.ndarray) -> np.ndarray:
    """The order column as numbers: seq_pos as non-negative integers, a timestamp as finite reals."""
    if column == "seq_pos":
        return parse_ids(file_name, column, values, line_numbers)
    stripped = np.strings.strip(values)
    parsed = np.full(len(values), np.nan)
    for row, text in enumerate(stripped.tolist()):  # float() accepts what numpy's parser does, plus a clear row
        try:
            parsed[row] = float(text) if text.isascii() else np.nan
        except ValueError:
            break
    bad = np.flatnonzero(~np.isfinite(parsed))
    if len(bad):
        raise DataError(f"{file_name} line {line_numbers[bad[0]]}: {column} {str(values[bad[0]])!r} is not a "
                        "finite number")
    return parsed


def atomic_header(header: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """(column names, name -> type) of a RecBole atomic header ('user_id:token', ...), else None."""
    if not header or not all(":" in column for column in header):
        return None
    names, types = [], {}
    for column in header:
        name, _, kind = column.partition(":")
        name = ATOMIC_NAMES.get(name.strip(), name.strip())
        names.append(name)
        types[name] = kind.strip()
    return names, types


def parse_id_column(file_name: str, column: str, values: np.ndarray, line_numbers: np.ndarray,
                    token: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(ids int64, the token of each id or None): integer ids as they are; a token column (an atomic
    file's) that is not all non-negative integers is numbered in sorted token order, its tokens kept."""
    stripped = np.strings.strip(values)
    if token and not (np.strings.isdecimal(stripped) & (np.strings.str_len(stripped) <= 10)).all():
        if (stripped == "").any():
            row = int(np.argmax(stripped == ""))
            raise DataError(f"{file_name} line {line_numbers[row]}: {column} is empty")
        tokens, ids = np.unique(stripped, return_inverse=True)
        logger.info("%s: %s holds %d distinct tokens, numbered 0..%d in sorted order", file_name, column,
                    len(tokens), len(tokens) - 1)
        return ids.astype(np.int64), tokens
    return parse_ids(file_name, column, values, line_numbers), None


def parse_inter(file_name: str, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray,
                                                      tuple[str, np.ndarray] | None, dict[str, np.ndarray]]:
    """(users int64, items int64, labels int64 in {0, 1, 2} or None without an x_label column, line
    numbers, (order column, its values) or None, {column: tokens} for token-numbered id columns) of every
    row of an .inter file (MMRec's, or RecBole's atomic one with a typed header)."""
    header, fields, line_numbers = split_table(file_name, data)
    atomic = atomic_header(header)
    if atomic is not None:
        header, types = atomic
    columns = column_indices(file_name, header)
    tokens = {}
    ids = {}
    for column in REQUIRED_COLUMNS:
        token = atomic is not None and types[column].startswith("token")
        ids[column], names = parse_id_column(file_name, column, fields[:, columns[column]], line_numbers, token)
        if names is not None:
            tokens[column] = names
    users, items = ids["userID"], ids["itemID"]
    labels = None
    if "x_label" in header:
        raw_labels = fields[:, header.index("x_label")]
        stripped = np.strings.strip(raw_labels)
        bad = np.flatnonzero((stripped != "0") & (stripped != "1") & (stripped != "2"))
        if len(bad):
            raise DataError(f"{file_name} line {line_numbers[bad[0]]}: x_label {str(raw_labels[bad[0]])!r} is "
                            "not 0 (train), 1 (valid) or 2 (test)")
        labels = stripped.astype(np.int64)
        if not np.any(labels == 0):
            raise DataError(f"{file_name}: the train split is empty (no row with x_label 0)")
    order_column = next((c for c in ORDER_COLUMNS if c in header), None)
    if order_column is not None and header.count(order_column) > 1:
        raise DataError(f"{file_name} line 1: column {order_column!r} appears more than once in the header")
    order = None if order_column is None else \
        (order_column, parse_order(file_name, order_column, fields[:, header.index(order_column)], line_numbers))
    return users, items, labels, line_numbers, order, tokens


def load_matrix(file_name: str, data: bytes) -> np.ndarray:
    """A .npy array from bytes (no pickles); unreadable content becomes a DataError naming the file."""
    if not data.startswith(NPY_MAGIC):
        raise DataError(f"{file_name}: not a .npy file (it does not start with the .npy magic bytes)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{file_name}: cannot be read as a .npy array ({error})") from None


def load_features(files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Each `<modality>_feat.npy` as float32 [rows, dim]: 2-D, numeric, finite, same row count."""
    features: dict[str, np.ndarray] = {}
    for file_name, data in sorted(files.items()):
        modality = file_name[: -len(FEATURE_SUFFIX)]
        if not modality:
            raise DataError(f"{file_name}: the modality name (the prefix before {FEATURE_SUFFIX}) is empty")
        array = load_matrix(file_name, data)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DataError(f"{file_name}: expected a float or integer array, got dtype {array.dtype}")
        if array.ndim != 2 or array.shape[1] < 1:
            raise DataError(f"{file_name}: expected a 2-D array [items, dim >= 1], got shape {array.shape}")
        with np.errstate(over="ignore"):
            array = array.astype(np.float32, copy=False)
        bad_row = first_non_finite_row(array)
        if bad_row is not None:
            raise DataError(f"{file_name} row {bad_row}: contains NaN or inf (or a value beyond float32); "
                            "features must be finite")
        warn_uninformative(file_name, array)
        features[modality] = array
    rows = {name + FEATURE_SUFFIX: len(array) for name, array in features.items()}
    if len(set(rows.values())) > 1:
        raise DataError("feature files disagree on the number of rows (items): "
                        + ", ".join(f"{name} {count}" for name, count in rows.items()))
    return features


def warn_uninformative(file_name: str, array: np.ndarray) -> None:
    """Warns when a feature matrix cannot tell items apart (all zeros, or every row the same), and counts
    all-zero rows: a model reading such a modality trains without a word otherwise."""
    if not array.any():
        logger.warning("%s: every value is 0; this modality tells the models nothing about the items", file_name)
        return
    if (array == array[0]).all():
        logger.warning("%s: every row is the same; this modality cannot tell items apart", file_name)
    zero_rows = int((~array.any(axis=1)).sum())
    if zero_rows:
        logger.info("%s: %d of %d rows are all zero", file_name, zero_rows, len(array))


def load_category(data: bytes) -> np.ndarray:
    """item_category.npy as an integer array [rows]: 1-D, non-negative, below 2**31."""
    array = load_matrix(CATEGORY_FILE, data)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{CATEGORY_FILE}: expected an integer array, got dtype {array.dtype}")
    if array.ndim != 1:
        raise DataError(f"{CATEGORY_FILE}: expected a 1-D array [items], got shape {array.shape}")
    bad = np.flatnonzero((array < 0) | (array > MAX_ID))
    if len(bad):
        raise DataError(f"{CATEGORY_FILE} row {bad[0]}: category {array[bad[0]]} is not in [0, 2**31)")
    return array


def item_file_categories(file_name: str, data: bytes, field: str,
                         item_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(category id of each dataset item, the category names) from a RecBole .item file.

    `item_keys` are the dataset items' ids as the .inter file writes them; `field` names the category column
    ('auto': the first of CATEGORY_COLUMNS). A token_seq column gives an item its first token [our choice:
    one category per item]. Items the file does not list get the category NO_CATEGORY; rows of items the
    .inter file does not have are ignored; both are counted in the log."""
    header, fields, line_numbers = split_table(file_name, data)
    atomic = atomic_header(header)
    if atomic is None:
        raise DataError(f"{file_name} line 1: expected a RecBole typed header such as 'item_id:token "
                        "categories:token_seq', got " + ", ".join(map(repr, header)))
    header, types = atomic
    if "itemID" not in header:
        raise DataError(f"{file_name} line 1: no item_id column in the header ({', '.join(header)})")
    column = next((c for c in CATEGORY_COLUMNS if c in header), None) if field == "auto" else field
    if column is None or column not in header:
        raise DataError(f"{file_name} line 1: data.item_category_field={field!r}: expected a column among "
                        f"{', '.join(c for c in header if c != 'itemID')}")
    keys = np.strings.strip(fields[:, header.index("itemID")])
    if (np.strings.isdecimal(keys) & (np.strings.str_len(keys) <= 10)).all():
        keys = keys.astype(np.int64).astype(str)  # as the .inter file's integer ids read ('007' is 7)
    values = np.strings.strip(fields[:, header.index(column)])
    if types[column].endswith("_seq"):
        values = np.strings.partition(values, " ")[0]
    values = np.where(values == "", NO_CATEGORY, values)
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if len(repeated):
        row = order[repeated[0] + 1]
        raise DataError(f"{file_name} line {line_numbers[row]}: item_id {str(keys[row])!r} is listed a second time")
    at = np.minimum(np.searchsorted(keys[order], item_keys), max(len(keys) - 1, 0))
    listed = keys[order][at] == item_keys if len(keys) else np.zeros(len(item_keys), bool)
    item_values = np.where(listed, values[order][at] if len(keys) else NO_CATEGORY, NO_CATEGORY)
    names, category = np.unique(item_values, return_inverse=True)
    logger.info("%s: %s gives %d categories to %d of %d items%s%s", file_name, column, len(names), int(listed.sum()),
                len(item_keys), f"; {int((~listed).sum())} unlisted items get {NO_CATEGORY!r}" if not listed.all()
                else "", f"; {len(keys) - int(listed.sum())} rows name items the .inter file does not have"
                if len(keys) > listed.sum() else "")
    return category.astype(np.int64), names.astype(str)


def dense_ids(file_name: str, column: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(ids, None) when the ids are about dense; else (their ranks among the distinct ids, the distinct
    ids), so a file with a few ids as large as 2000000000 does not allocate two billion rows."""
    distinct = np.unique(ids)
    if int(ids.max()) + 1 <= 2 * len(distinct) + SPARSE_SLACK:
        return ids, None
    logger.info("%s: %s holds %d distinct ids up to %d; remapped to 0..%d in id order (the original ids are "
                "kept and named in recommendations)", file_name, column, len(distinct), int(ids.max()),
                len(distinct) - 1)
    return np.searchsorted(distinct, ids), distinct


def find_id_map(directory: Path, column: str) -> Path | None:
    """The directory's id map for `column` (userID or itemID), if it has one."""
    found = [directory / name for name in ID_MAPS[column] if (directory / name).is_file()]
    if len(found) > 1:
        raise DataError(f"{directory}: both {found[0].name} and {found[1].name} map {column}; keep one")
    return found[0] if found else None


def id_names(file_name: str, data: bytes, column: str, file_ids: np.ndarray) -> np.ndarray:
    """The dataset's own id (the map's first column other than `column`) of each of `file_ids` ('' for an
    id the map does not name); one-line DataError for a malformed map."""
    header, fields, line_numbers = split_table(file_name, data)
    if column not in header or len(header) < 2:
        raise DataError(f"{file_name} line 1: expected a tab-separated header with {column!r} and the dataset's "
                        f"own id column, found {', '.join(map(repr, header))}")
    ids = parse_ids(file_name, column, fields[:, header.index(column)], line_numbers)
    names = np.strings.strip(fields[:, next(i for i, c in enumerate(header) if c != column)])
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if len(repeated):
        row = order[repeated[0] + 1]
        raise DataError(f"{file_name} line {line_numbers[row]}: {column} {ids[row]} is mapped a second time")
    at = np.minimum(np.searchsorted(ids[order], file_ids), max(len(ids) - 1, 0))
    known = (ids[order][at] == file_ids) if len(ids) else np.zeros(len(file_ids), bool)
    return np.where(known, names[order][at] if len(ids) else "", "")


def drop_duplicates(keys: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices (in file order) of the rows to keep: per key, the smallest label, then the first row."""
    order = np.lexsort((np.arange(len(keys)), labels, keys))
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[order[1:]] != keys[order[:-1]]
    return np.sort(order[first])


def renumber(ids: np.ndarray, origin: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(ids numbered 0..n-1 in id order, the file's id or token of each new id) after rows were dropped or
    ids were sparse; `origin` maps the current ids to the file's (None: they are the file's)."""
    distinct, renumbered = np.unique(ids, return_inverse=True)
    return renumbered.astype(np.int64), distinct if origin is None else origin[distinct]


def split_labels(file_name: str, labels: np.ndarray | None, users: np.ndarray,
                 order: tuple[str, np.ndarray] | None, split: str, ratios: tuple[float, ...],
                 seed: int) -> tuple[np.ndarray, str]:
    """(x_label of every row, how it was made): the file's x_label, or a split data.split names."""
    if split == "auto":
        split = "x_label" if labels is not None else "leave_one_out" if order is not None else "random"
    if split == "x_label":
        if labels is None:
            raise DataError(f"{file_name} line 1: data.split='x_label' but the header has no x_label column; set "
                            "data.split to 'random' or 'leave_one_out' (or 'auto')")
        return labels, "the file's x_label"
    if split == "leave_one_out":
        if order is None:
            raise DataError(f"{file_name} line 1: data.split='leave_one_out' needs an order column "
                            f"({' or '.join(ORDER_COLUMNS)}); the header has none")
        made = leave_one_out_labels(users, order[1]), f"leave-one-out by {order[0]}"
    else:
        made = random_labels(users, tuple(ratios), seed), f"random {':'.join(f'{r:g}' for r in ratios)} per user " \
            f"(seed {seed})"
    if labels is not None:
        logger.info("%s: data.split=%r replaces the file's x_label", file_name, split)
    return made


def load_mmrec_dir(path: str | os.PathLike, split: str = "auto", split_ratios: tuple[float, ...] = (0.8, 0.1, 0.1),
                   split_seed: int = 0, kcore: int = 0, item_category_field: str = "auto") -> InteractionDataset:
    """Loads and validates an MMRec directory (or one holding a RecBole atomic .inter file); logs what
    evaluation will leave out.

    `split` (splits.SPLITS) says where train / valid / test come from: the x_label column, or a random or
    leave-one-out split made here ('auto': x_label when the file has one, else leave-one-out when it has an
    order column, else random); `kcore` > 1 first removes users and items with fewer interactions;
    `item_category_field` names the category column of a RecBole .item file.
    """
    check_split(split, tuple(split_ratios), kcore)
    start = time.perf_counter()
    directory = Path(path)
    inter_path, feature_paths, category_path = list_files(directory)
    name = inter_path.stem
    cold_path = directory / COLD_ITEMS_FILE
    blobs = {p.name: read_bytes(p) for p in [inter_path, *feature_paths]
             + ([category_path] if category_path else []) + ([cold_path] if cold_path.is_file() else [])}
    users, items, labels, line_numbers, order, tokens = parse_inter(inter_path.name, blobs[inter_path.name])
    features = load_features({p.name: blobs[p.name] for p in feature_paths})
    category = load_category(blobs[CATEGORY_FILE]) if category_path and category_path.name == CATEGORY_FILE else None

    item_files = {p.name: len(features[p.name[: -len(FEATURE_SUFFIX)]]) for p in feature_paths}
    if category is not None:
        item_files[CATEGORY_FILE] = len(category)
    if len(set(item_files.values())) > 1:
        raise DataError("per-item files disagree on the number of items (rows): "
                        + ", ".join(f"{file} {rows}" for file, rows in item_files.items()))
    if item_files and "itemID" in tokens:
        raise DataError(f"{inter_path.name}: itemID holds tokens, but {next(iter(item_files))} is indexed by "
                        "integer itemID (row = itemID); give integer item ids")
    if item_files:
        file_name, rows = next(iter(item_files.items()))
        beyond = np.flatnonzero(items >= rows)
        if len(beyond):
            raise DataError(f"{inter_path.name}: itemID {items[beyond[0]]} at line {line_numbers[beyond[0]]} "
                            f"is beyond the {rows} rows of {file_name}")
    user_origin = tokens.get("userID")
    if user_origin is None:
        users, user_origin = dense_ids(inter_path.name, "userID", users)
    item_origin = tokens.get("itemID")
    if not item_files and item_origin is None:  # with per-item files an item id is a row number, so it stays
        items, item_origin = dense_ids(inter_path.name, "itemID", items)
    if kcore > 1:
        keep = kcore_keep(users, items, kcore)
        users_before, items_before = len(np.unique(users)), len(np.unique(items))
        users, items, line_numbers = users[keep], items[keep], line_numbers[keep]
        labels = None if labels is None else labels[keep]
        order = None if order is None else (order[0], order[1][keep])
        if not keep.any():
            raise DataError(f"{inter_path.name}: data.kcore={kcore} removes every interaction")
        users, user_origin = renumber(users, user_origin)
        if not item_files:
            items, item_origin = renumber(items, item_origin)
        logger.info("%s: %d-core filtering kept %d of %d interactions, %d of %d users, %d of %d items",
                    inter_path.name, kcore, int(keep.sum()), len(keep), len(np.unique(users)), users_before,
                    len(np.unique(items)), items_before)
    labels, split_source = split_labels(inter_path.name, labels, users, order, split, split_ratios, split_seed)
    if not np.any(labels == 0):
        raise DataError(f"{inter_path.name}: the train split is empty after {split_source}")
    logger.info("%s: train / valid / test from %s: %d / %d / %d rows", inter_path.name, split_source,
                *(int((labels == label).sum()) for label in range(3)))
    if order is not None and split_source.startswith("random"):
        logger.info("%s: a random split is not in %s order, so no user sequences are kept (a sequential model "
                    "needs data.split='leave_one_out')", inter_path.name, order[0])
        order = None
    checksum = files_checksum(blobs)
    if split_source != "the file's x_label" or kcore > 1:  # the data is the files and how they were cut
        checksum = hashlib.sha256(f"{checksum}|split {split_source}|kcore {kcore}".encode()).hexdigest()
    num_users = int(users.max()) + 1 if user_origin is None else len(user_origin)
    num_items = max(int(items.max()) + 1, *item_files.values()) if item_files else \
        (int(items.max()) + 1 if item_origin is None else len(item_origin))
    names = {}
    for column, origin, count in (("userID", user_origin, num_users), ("itemID", item_origin, num_items)):
        if origin is not None and origin.dtype.kind in "US":  # tokens are the dataset's own ids
            names[column] = origin.astype(str)
            continue
        file_ids = np.arange(count) if origin is None else origin
        map_path = find_id_map(directory, column)
        if map_path is not None:
            names[column] = id_names(map_path.name, read_bytes(map_path), column, file_ids)
            logger.info("%s: the dataset's own ids of %d of %d %s", map_path.name, int((names[column] != "").sum()),
                        count, "users" if column == "userID" else "items")
        elif len(file_ids) and not np.array_equal(file_ids, np.arange(count)):
            names[column] = file_ids.astype(str)
    category_names = None
    if category_path is not None and category is None:  # a RecBole .item file
        item_keys = (np.arange(num_items) if item_origin is None else item_origin).astype(str)
        category, category_names = item_file_categories(category_path.name, blobs[category_path.name],
                                                        item_category_field, item_keys)
        if item_category_field != "auto":
            checksum = hashlib.sha256(f"{checksum}|categories {item_category_field}".encode()).hexdigest()

    cold_items = None
    if COLD_ITEMS_FILE in blobs:
        if item_origin is not None:
            raise DataError(f"{COLD_ITEMS_FILE} lists integer item ids, but {inter_path.name}'s itemID is remapped "
                            "(tokens or sparse ids); give integer item ids that are row numbers")
        cold_items = as_cold_items(load_matrix(COLD_ITEMS_FILE, blobs[COLD_ITEMS_FILE]), num_items, COLD_ITEMS_FILE)
        logger.info("%s: %d items declared cold", COLD_ITEMS_FILE, len(cold_items))

    sequences = None
    if order is not None:
        sequences = sort_into_sequences(users, items, labels, order[1], num_users, num_items, order[0],
                                        line_numbers, inter_path.name)
        logger.info("%s: %d interactions in %s order kept as %d user sequences (repeats included)",
                    inter_path.name, len(users), order[0], num_users)
    keep = drop_duplicates(users * num_items + items, labels)
    if len(keep) < len(users):
        if sequences is None:
            logger.warning("%s: removed %d duplicate (user, item) rows (kept one per pair: train over valid over "
                           "test, then the first in the file)", inter_path.name, len(users) - len(keep))
        else:
            logger.info("%s: %d rows repeat a (user, item) pair; the sequences keep them, the pair splits of the "
                        "graph models keep one row per pair", inter_path.name, len(users) - len(keep))
        users, items, labels = users[keep], items[keep], labels[keep]
    pairs = np.stack([users, items], axis=1).astype(np.int32)
    splits = {split: pairs[labels == label] for label, split in enumerate(SPLIT_NAMES)}
    dataset = InteractionDataset(
        name=name, num_users=num_users, num_items=num_items, **splits, features=features,
        item_category=category, category_names=category_names, checksum=checksum, source=str(directory.resolve()),
        sequences=sequences, user_names=names.get("userID"), item_names=names.get("itemID"), cold_items=cold_items)
    logger.info("loaded %s from %s in %.2f s", name, directory, time.perf_counter() - start)
    log_dataset_report(dataset)
    return dataset
