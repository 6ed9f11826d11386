"""A held-back leave-one-out split of a sequential dataset: every user's sequence shortened by its last item.

The old test item is dropped, the old valid item becomes the test target and the item before it the valid
target; the item files (features, categories) are linked beside the new .inter. Nothing is tuned on this
split: it checks that a comparison made on the original holds on targets no run selected on.

  python experiments/shorten_sequences.py --data ../shared/data/scientific --out /tmp/scientific_short/scientific
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmjax.data import load_mmrec_dir  # noqa: E402
from mmjax.errors import MmjaxError  # noqa: E402


def shortened_rows(indptr: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, seq_pos, x_label) of every sequence without its last item, leave-one-out relabelled;
    users left with fewer than 3 items keep only train rows and the targets they still have."""
    users, kept_items, positions, labels = [], [], [], []
    for user in range(len(indptr) - 1):
        sequence = items[indptr[user]:indptr[user + 1] - 1]
        n = len(sequence)
        label = np.zeros(n, np.int64)
        if n >= 3:
            label[-1], label[-2] = 2, 1
        users.append(np.full(n, user))
        kept_items.append(sequence)
        positions.append(np.arange(n))
        labels.append(label)
    return tuple(np.concatenate(part) for part in (users, kept_items, positions, labels))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="new dataset directory (outside the repository)")
    args = parser.parse_args()
    try:
        dataset = load_mmrec_dir(args.data)
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if dataset.sequences is None:
        print(f"error: {args.data}: no order column (seq_pos or timestamp) to shorten sequences by", file=sys.stderr)
        return 2
    if os.path.abspath(args.out).startswith(ROOT + os.sep):
        print("error: --out: write the split outside the repository", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    users, items, positions, labels = shortened_rows(dataset.sequences.indptr, dataset.sequences.items)
    with open(os.path.join(args.out, f"{dataset.name}.inter"), "w") as f:
        f.write("userID\titemID\tseq_pos\tx_label\n")
        f.writelines(f"{u}\t{i}\t{p}\t{x}\n" for u, i, p, x in zip(users, items, positions, labels))
    for name in sorted(os.listdir(args.data)):
        if name.endswith(".npy"):
            target = os.path.join(args.out, name)
            if not os.path.exists(target):
                os.symlink(os.path.abspath(os.path.join(args.data, name)), target)
    print(f"wrote {args.out}: {len(users)} interactions, {int((labels == 1).sum())} valid and "
          f"{int((labels == 2).sum())} test targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
