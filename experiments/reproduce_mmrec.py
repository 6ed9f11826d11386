"""Runs LightGCN and BPR-MF on the shared real datasets with MMRec's hyperparameters.

Writes experiments/results/<model>_<dataset>.json: our results.json (command, commit, seed, dataset
checksum, epochs, seconds per epoch, valid/test metrics at the best-valid epoch) next to MMRec's
figures from shared/anchors.md and our/MMRec ratios.

  python experiments/reproduce_mmrec.py                      # every run below
  python experiments/reproduce_mmrec.py --only lightgcn_baby
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")

# MMRec on our splits (shared/anchors.md): test metrics at the best-valid epoch, seconds per epoch.
MMREC = {
    ("lightgcn", "baby"): {"test": {"recall@10": 0.0439, "recall@20": 0.0696, "ndcg@10": 0.0232,
                                    "ndcg@20": 0.0297}, "best_epoch": 24, "seconds_per_epoch": 7.0,
                           "seconds_per_eval": 3.1},
    ("lightgcn", "tiktok"): {"test": {"recall@10": 0.0549, "recall@20": 0.0888, "ndcg@10": 0.0290,
                                      "ndcg@20": 0.0375}, "best_epoch": 31, "seconds_per_epoch": 1.0,
                             "seconds_per_eval": 0.55},
    ("bpr", "tiktok"): {"test": {"recall@10": 0.0309, "recall@20": 0.0483, "ndcg@10": 0.0169,
                                 "ndcg@20": 0.0212}, "best_epoch": 58, "seconds_per_epoch": 0.8,
                        "seconds_per_eval": 0.42},
    ("bpr", "baby"): None,  # not in anchors.md
}
OVERRIDES = {"lightgcn": ["--config.model.n_layers=1", "--config.model.reg_weight=0.01"],
             "bpr": ["--config.model.reg_weight=0.01"]}


def run(model: str, dataset: str, seed: int) -> dict:
    workdir = os.path.join(ROOT, "runs", "reproduce_mmrec", f"{model}_{dataset}_seed{seed}")
    command = [sys.executable, "-m", "mmjax.main", f"--config=configs/{model}.py", f"--workdir={workdir}",
               f"--config.data.dir={os.path.join(DATA, dataset)}", f"--config.train.seed={seed}",
               *OVERRIDES[model]]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    with open(os.path.join(workdir, "results.json")) as f:
        ours = json.load(f)
    anchor = MMREC[(model, dataset)]
    record = {"ours": ours, "mmrec": anchor}
    if anchor:
        record["ratio_to_mmrec"] = {k: ours["test"][k] / v for k, v in anchor["test"].items()}
        record["speedup_per_epoch"] = anchor["seconds_per_epoch"] / ours["seconds_per_epoch"]
        record["speedup_per_eval"] = anchor["seconds_per_eval"] / ours["seconds_per_eval"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="runs named <model>_<dataset>")
    parser.add_argument("--seed", type=int, default=999, help="MMRec's default seed")
    args = parser.parse_args()
    if not os.path.isdir(DATA):
        sys.exit(f"error: {DATA} not found; the real datasets live in shared/data beside the project")
    os.makedirs(os.path.join(ROOT, "experiments", "results"), exist_ok=True)
    for model, dataset in MMREC:
        name = f"{model}_{dataset}"
        if args.only and name not in args.only:
            continue
        record = run(model, dataset, args.seed)
        path = os.path.join(ROOT, "experiments", "results", f"{name}.json")
        with open(path, "w") as f:
            json.dump(record, f, indent=2)
        test = record["ours"]["test"]
        print(f"{name}: test recall@20 {test['recall@20']:.4f} ndcg@20 {test['ndcg@20']:.4f} "
              f"ratio {record.get('ratio_to_mmrec', {})} -> {path}", flush=True)


if __name__ == "__main__":
    main()
