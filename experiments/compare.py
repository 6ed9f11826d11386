"""Our models on one dataset beside the reported figures, and what the modalities add over LightGCN.

Reads experiments/results/<model>_<dataset>.json (written by experiments/reproduce_mmrec.py: per-seed runs
and their mean) and third_party/reported_results/*.json; prints a Markdown table and writes it to
experiments/results/compare_<dataset>.md.

  python -m experiments.compare --dataset tiktok
  python -m experiments.compare --dataset tiktok_resplit1   # the <model>_tiktok_resplit1.json records
"""

from __future__ import annotations

import argparse
import json
import os

from experiments.ablate import COLUMNS, reported_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISPLAY = {"bpr": "BPR-MF", "lightgcn": "LightGCN", "vbpr": "VBPR", "freedom": "FREEDOM", "mgcn": "MGCN",
           "rlmultimodalrec": "RLMultimodalRec", "magnet": "MAGNET"}
USES_MODALITIES = {"vbpr", "freedom", "mgcn", "rlmultimodalrec", "magnet"}


def our_runs(dataset: str) -> dict[str, dict]:
    """model -> its reproduce_mmrec record on `dataset`, for every model that has one."""
    found = {}
    for model in DISPLAY:
        path = os.path.join(ROOT, "experiments", "results", f"{model}_{dataset}.json")
        if os.path.exists(path):
            with open(path) as f:
                found[model] = json.load(f)
    return found


def table(dataset: str) -> str:
    runs = our_runs(dataset)
    checksum = next(iter(runs.values()))["runs"][0]["dataset_checksum"] if runs else None
    reported = {row["model"]: row for row in reported_for(dataset, checksum)}
    baseline = runs.get("lightgcn", {}).get("mean", {}).get("test")
    lines = [f"# Models on `{dataset}`", "",
             "Test metrics at the best-valid epoch; ours are the mean over the seeds listed (per seed in the JSON).",
             "", "| model | seeds | " + " | ".join(COLUMNS) + " | R@20 / N@20 vs our LightGCN | reported R@20 / N@20 "
             "(source) | ours / reported |", "|---" * (len(COLUMNS) + 5) + "|"]
    for model, record in runs.items():
        test = record["mean"]["test"]
        cells = [f"{test[m]:.4f}" for m in COLUMNS]
        gain = (f"{test['recall@20'] / baseline['recall@20'] - 1:+.1%} / {test['ndcg@20'] / baseline['ndcg@20'] - 1:+.1%}"
                if baseline and model != "lightgcn" else "–")
        ref = reported.get(DISPLAY[model])
        ref_cells = (f"{ref['metrics']['recall@20']:.4f} / {ref['metrics']['ndcg@20']:.4f} ({ref['source'].split(';')[0]})",
                     f"{test['recall@20'] / ref['metrics']['recall@20']:.3f} / "
                     f"{test['ndcg@20'] / ref['metrics']['ndcg@20']:.3f}") if ref else ("–", "–")
        name = DISPLAY[model] + (" (uses modalities)" if model in USES_MODALITIES else "")
        lines.append(f"| {name} | {','.join(map(str, record['seeds']))} | " + " | ".join(cells) +
                     f" | {gain} | {ref_cells[0]} | {ref_cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiktok")
    args = parser.parse_args()
    text = table(args.dataset)
    with open(os.path.join(ROOT, "experiments", "results", f"compare_{args.dataset}.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
