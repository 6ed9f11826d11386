"""Our models on one dataset beside the reported figures, and what the modalities add over LightGCN.

Reads experiments/results/<model>_<dataset>.json (written by experiments/reproduce_mmrec.py: per-seed runs
and their mean) and third_party/reported_results/*.json; prints a Markdown table and writes it to
experiments/results/compare_<dataset>.md.

  python -m experiments.compare --dataset tiktok
  python -m experiments.compare --dataset tiktok_resplit1   # the <model>_tiktok_resplit1.json records
  python -m experiments.compare --runs runs/lightgcn runs/magnet --out /tmp/mine.md   # your own workdirs

With --runs, the table is of your own finished workdirs (their results.json), grouped by model over the
seeds found, LightGCN's as the baseline where one is among them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from experiments.ablate import COLUMNS, reported_for
from mmjax.errors import ConfigError, MmjaxError

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


def workdir_runs(workdirs: list[str]) -> tuple[str, dict[str, dict]]:
    """(dataset, model -> {"seeds", "mean": {"test"}, "runs"}) from finished workdirs' results.json; one
    line ConfigError for a missing record or runs on different data."""
    grouped: dict[str, list[dict]] = {}
    for workdir in workdirs:
        path = os.path.join(workdir, "results.json")
        if not os.path.isfile(path):
            raise ConfigError(f"{path} not found: --runs takes finished training workdirs")
        with open(path) as f:
            results = json.load(f)
        grouped.setdefault(results["model"], []).append(results)
    checksums = {r["dataset_checksum"] for runs in grouped.values() for r in runs}
    if len(checksums) > 1:
        raise ConfigError("--runs: the workdirs were trained on different data (dataset checksums "
                         f"{sorted(c[:12] for c in checksums)}); compare runs of one dataset")
    dataset = next(r["dataset"] for runs in grouped.values() for r in runs)
    records = {}
    for model, runs in grouped.items():
        metrics = [m for m in COLUMNS if all(m in r["test"] for r in runs)]
        records[model] = {"seeds": [r["seed"] for r in runs], "runs": runs,
                          "mean": {"test": {m: sum(r["test"][m] for r in runs) / len(runs) for m in metrics}}}
    return dataset, records


def table(dataset: str, runs: dict[str, dict] | None = None) -> str:
    runs = our_runs(dataset) if runs is None else runs
    if not runs:
        raise ConfigError(f"no recorded runs on {dataset!r} under experiments/results (e.g. "
                         "<model>_<dataset>.json from reproduce_mmrec.py); give your own workdirs with --runs")
    checksum = next(iter(runs.values()))["runs"][0]["dataset_checksum"] if runs else None
    reported = {row["model"]: row for row in reported_for(dataset, checksum)}
    baseline = runs.get("lightgcn", {}).get("mean", {}).get("test")
    lines = [f"# Models on `{dataset}`", "",
             "Test metrics at the best-valid epoch; ours are the mean over the seeds listed (per seed in the JSON).",
             "", "| model | seeds | " + " | ".join(COLUMNS) + " | R@20 / N@20 vs our LightGCN | reported R@20 / N@20 "
             "(source) | ours / reported |", "|---" * (len(COLUMNS) + 5) + "|"]
    for model, record in runs.items():
        test = record["mean"]["test"]
        cells = [f"{test[m]:.4f}" if m in test else "–" for m in COLUMNS]
        gain = (f"{test['recall@20'] / baseline['recall@20'] - 1:+.1%} / {test['ndcg@20'] / baseline['ndcg@20'] - 1:+.1%}"
                if baseline and model != "lightgcn" and "recall@20" in test and "ndcg@20" in test else "–")
        ref = reported.get(DISPLAY.get(model, model))
        ref = ref if ref and "recall@20" in test and "ndcg@20" in test else None
        ref_cells = (f"{ref['metrics']['recall@20']:.4f} / {ref['metrics']['ndcg@20']:.4f} ({ref['source'].split(';')[0]})",
                     f"{test['recall@20'] / ref['metrics']['recall@20']:.3f} / "
                     f"{test['ndcg@20'] / ref['metrics']['ndcg@20']:.3f}") if ref else ("–", "–")
        name = DISPLAY.get(model, model) + (" (uses modalities)" if model in USES_MODALITIES else "")
        lines.append(f"| {name} | {','.join(map(str, record['seeds']))} | " + " | ".join(cells) +
                     f" | {gain} | {ref_cells[0]} | {ref_cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tiktok", help="the shipped records' dataset (without --runs)")
    parser.add_argument("--runs", nargs="+", default=None, metavar="WORKDIR", help="your own finished workdirs")
    parser.add_argument("--out", default=None, help="the Markdown file (default: experiments/results/"
                        "compare_<dataset>.md for the shipped records; none for --runs)")
    args = parser.parse_args()
    try:
        dataset, runs = workdir_runs(args.runs) if args.runs else (args.dataset, None)
        text = table(dataset, runs)
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    out = args.out or (None if args.runs else os.path.join(ROOT, "experiments", "results", f"compare_{dataset}.md"))
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
