"""Writes mmjax's cold-start split of a dataset in the folder format of the MILK / MAMEX code, so the reference
(experiments/reference_mamex.py) trains and ranks on exactly the split our configs/mamex.py runs on.

  python experiments/export_cold_split.py --data ../shared/data/tiktok --out /tmp/tiktok_cold \
      --image image --text audio          # the reference's image and text slots
  python experiments/export_cold_split.py --data ../shared/data/tiktok --out /tmp/tiktok_cold_7 --seed 7

Files: train.txt / val.txt / test.txt (one line per user, 'user item item ...'; a user without items is
written 'user ' so user ids keep their rows), cold_item_index.npy (int64, sorted), image_feat.npy and
text_feat.npy (the two named modalities), and split.json (counts, seed, source checksum). Like our cold
views, val.txt and test.txt hold the cold interactions of users with a train interaction only: those are
the users our evaluation ranks (the others have no trained vector).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmjax.data import load_mmrec_dir  # noqa: E402
from mmjax.data.cold import cold_item_split  # noqa: E402
from mmjax.train.coldstart import trainable_pairs  # noqa: E402


def user_lines(pairs: np.ndarray, num_users: int) -> str:
    """'u i1 i2 ...' for every user 0..num_users-1 (items in file order, ascending), 'u ' for a user without."""
    items_of: list[list[int]] = [[] for _ in range(num_users)]
    for user, item in sorted(map(tuple, pairs.tolist())):
        items_of[user].append(item)
    return "".join(f"{u} {' '.join(map(str, items))}\n" for u, items in enumerate(items_of))


def export(data_dir: str, out: str, fraction: float, seed: int, image: str, text: str) -> dict:
    """Writes the split folder; returns its summary (also written to split.json)."""
    dataset = load_mmrec_dir(data_dir)
    for slot, name in (("image", image), ("text", text)):
        if name not in dataset.features:
            raise SystemExit(f"error: --{slot} {name}: not a modality of {data_dir} ({sorted(dataset.features)})")
    split = cold_item_split(dataset, fraction, seed)
    data = split.dataset
    os.makedirs(out, exist_ok=True)
    files = {"train.txt": data.train, "val.txt": trainable_pairs(split, split.rows("valid", cold=True)),
             "test.txt": trainable_pairs(split, split.rows("test", cold=True))}
    for name, pairs in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(user_lines(pairs, data.num_users))
    np.save(os.path.join(out, "cold_item_index.npy"), split.cold_items.astype(np.int64))
    np.save(os.path.join(out, "image_feat.npy"), np.asarray(dataset.features[image], np.float32))
    np.save(os.path.join(out, "text_feat.npy"), np.asarray(dataset.features[text], np.float32))
    summary = {"source": os.path.abspath(data_dir), "source_checksum": dataset.checksum,
               "split_checksum": data.checksum, "cold_fraction": fraction, "cold_seed": seed,
               "image_slot": image, "text_slot": text, "num_users": data.num_users, "num_items": data.num_items,
               "cold_items": int(len(split.cold_items)), **{name: int(len(p)) for name, p in files.items()}}
    with open(os.path.join(out, "split.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="MMRec dataset directory")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--fraction", type=float, default=0.2, help="share of items made cold (data.cold.fraction)")
    parser.add_argument("--seed", type=int, default=2025, help="seed of the cold draw (data.cold.seed)")
    parser.add_argument("--image", default="image", help="modality written as image_feat.npy")
    parser.add_argument("--text", default="audio", help="modality written as text_feat.npy")
    args = parser.parse_args(argv)
    print(json.dumps(export(args.data, args.out, args.fraction, args.seed, args.image, args.text), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
