"""Writes a held-back re-split of an MMRec directory: every user keeps its number of train, valid and test
interactions, but which of its interactions fall in each split is drawn anew (seeded).

A model compared with a reference on the original split can then be compared again on data neither was
tuned on, with the same split statistics. The feature files are linked, not copied, and the new
`.inter` keeps the original header and columns (only x_label changes).

  python experiments/resplit.py --data ../shared/data/tiktok --out /tmp/tiktok_resplit1 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from mmjax.data.mmrec import list_files
from mmjax.errors import DataError


def resplit_labels(users: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New x_label per row: within each user, the same multiset of labels, randomly permuted."""
    order = np.lexsort((rng.random(users.shape[0]), users))  # rows grouped by user, shuffled within
    grouped = np.argsort(users, kind="stable")  # the user's original labels in row order
    out = np.empty_like(labels)
    out[order] = labels[grouped]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MMRec directory to re-split")
    parser.add_argument("--out", required=True, help="new directory (must not exist)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    source = Path(args.data).resolve()
    try:
        inter, features, category = list_files(source)
    except DataError as error:
        sys.exit(f"error: {error}")
    lines = inter.read_text().splitlines()
    header = lines[0].split("\t")
    for column in ("userID", "x_label"):
        if column not in header:
            sys.exit(f"error: {inter.name}: header has no {column} column")
    rows = [line.split("\t") for line in lines[1:] if line]
    user_col, label_col = header.index("userID"), header.index("x_label")
    users = np.array([int(r[user_col]) for r in rows])
    labels = np.array([int(r[label_col]) for r in rows])
    new = resplit_labels(users, labels, np.random.default_rng(args.seed))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    for row, label in zip(rows, new):
        row[label_col] = str(label)
    text = "\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n"
    (out / inter.name).write_text(text)
    for path in features + ([category] if category else []):
        os.symlink(path, out / path.name)
    moved = float(np.mean(new != labels))
    print(json.dumps({"source": str(source), "out": str(out), "seed": args.seed, "rows": len(rows),
                      "rows_with_a_new_label": round(moved, 4),
                      "inter_sha256": hashlib.sha256(text.encode()).hexdigest()}, indent=2))


if __name__ == "__main__":
    main()
