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

from mmjax.data.mmrec import list_files, parse_inter, split_table
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
    try:  # the loader's own parsing and checks, so a malformed directory stops with its one-line error
        inter, features, category = list_files(source)
        data = inter.read_bytes()
        users, _, labels, _, _, _ = parse_inter(inter.name, data)
        header, fields, _ = split_table(inter.name, data)
        if labels is None:
            raise DataError(f"{inter.name} line 1: no x_label column to re-draw")
    except DataError as error:
        sys.exit(f"error: {error}")
    new = resplit_labels(users, labels, np.random.default_rng(args.seed))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    fields[:, header.index("x_label")] = new.astype(str)
    text = "\n".join(["\t".join(header)] + ["\t".join(row) for row in fields.tolist()]) + "\n"
    (out / inter.name).write_text(text)
    for path in features + ([category] if category else []):
        os.symlink(path, out / path.name)
    moved = float(np.mean(new != labels))
    print(json.dumps({"source": str(source), "out": str(out), "seed": args.seed, "rows": int(len(new)),
                      "rows_with_a_new_label": round(moved, 4),
                      "inter_sha256": hashlib.sha256(text.encode()).hexdigest()}, indent=2))


if __name__ == "__main__":
    main()
