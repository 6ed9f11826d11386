"""Missing-modality robustness: each trained model's test metric as a growing share of items loses a modality.

  python -m experiments.robustness --data=../shared/data/tiktok --config=configs/mamex.py \
      --config=configs/dropoutnet.py --config=configs/clcrec.py --name=robustness_tiktok
  python -m experiments.robustness --run MAMEX=runs/ablate/coldstart_tiktok/MAMEX_seed2025 --run ...

Each --config is trained (in runs/robustness/<name>/<model>; a finished run is reused, a killed one resumes)
or each --run names a finished workdir. Then, for every modality of the data and every --fractions value,
`--mode=eval` is repeated with eval.drop_modality / eval.drop_fraction (train/missing.py: a seeded share of
the items each test view ranks has that modality's features zeroed and masked; the model's inputs are
rebuilt from them, the trained parameters kept). Writes experiments/results/<name>/robustness.json, table.md
(the --metric of the test view per model, modality and share) and chart.png (one panel per modality).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from mmjax.compilation_cache import enable_compilation_cache
from mmjax.config_files import load_config_file, parse_value, with_overrides
from mmjax.errors import MmjaxError
from mmjax.logs import script_logging, workdir_log
from mmjax.train.missing import missing_view_name
from mmjax.train.report import save_figure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trained_runs(args: argparse.Namespace) -> dict[str, str]:
    """label -> finished workdir: the --run ones, and each --config trained (or reused) under runs/robustness."""
    from mmjax.train.train import train_and_evaluate

    runs = {}
    for item in args.run:
        label, sep, workdir = item.partition("=")
        if not sep or not os.path.exists(os.path.join(workdir, "results.json")):
            raise MmjaxError(f"--run {item}: expected LABEL=WORKDIR of a finished training run (with results.json)")
        runs[label] = workdir
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    for path in args.config:
        config = with_overrides(load_config_file(path), {**overrides, "data.dir": args.data})
        label = config.model.name
        workdir = os.path.join(args.runs_root, args.name, label)
        with workdir_log(workdir):
            train_and_evaluate(config, workdir)
        runs[label] = workdir
    if not runs:
        raise MmjaxError("expected at least one --config to train or --run of a trained workdir")
    return runs


def robustness_table(runs: dict[str, str], fractions: list[float], metric: str, view: str,
                     seed: int) -> dict[str, Any]:
    """{label: {modality: {share: metric}}} of `view` with each modality missing for each share of items."""
    from mmjax.report import load_run_config
    from mmjax.train.train import evaluate_best

    table: dict[str, Any] = {}
    for label, workdir in runs.items():
        config = load_run_config(workdir)
        base = evaluate_best(config, workdir)
        modalities = _modalities(config)
        table[label] = {"workdir": workdir, "model": config.model.name, "best_epoch": base["best_epoch"],
                        "complete": base[view][metric], "missing": {}}
        for modality in modalities:
            row = {}
            for fraction in fractions:
                config.eval.drop_modality, config.eval.drop_fraction, config.eval.drop_seed = modality, fraction, seed
                out = evaluate_best(config, workdir)
                row[f"{fraction:g}"] = out[missing_view_name(view, modality, fraction)][metric]
            table[label]["missing"][modality] = row
            logging.info("%s without %s: %s", label, modality, row)
    return table


def _modalities(config) -> list[str]:
    """The feature modalities of a run's dataset."""
    from mmjax.train.train import load_dataset

    return list(load_dataset(config.data).modalities)


def markdown(name: str, table: dict[str, Any], fractions: list[float], metric: str, view: str) -> str:
    """One row per (model, modality): the metric at each share of items missing the modality."""
    head = "| model | missing modality | " + " | ".join(f"{f:.0%} missing" for f in fractions) + " | drop at 100 % |"
    lines = [f"# {name}: test {metric} ({view} view) with a modality missing", "", head,
             "|" + "---|" * (len(fractions) + 3)]
    for label, entry in table.items():
        for modality, row in entry["missing"].items():
            values = [row[f"{f:g}"] for f in fractions]
            full, gone = row.get("0", entry["complete"]), row.get("1", values[-1])
            drop = f"{(gone - full) / full:+.1%}" if full else "n/a"
            lines.append(f"| {label} | {modality} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {drop} |")
    return "\n".join(lines) + "\n"


def chart(name: str, table: dict[str, Any], fractions: list[float], metric: str, path: str) -> None:
    """One panel per modality: the metric against the share missing, one line per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modalities = sorted({m for entry in table.values() for m in entry["missing"]})
    fig, axes = plt.subplots(1, len(modalities), figsize=(4.2 * len(modalities) + 1.8, 3.4), squeeze=False)
    for ax, modality in zip(axes[0], modalities):
        for label, entry in table.items():
            if modality in entry["missing"]:
                ax.plot([100 * f for f in fractions], [entry["missing"][modality][f"{f:g}"] for f in fractions],
                        marker="o", label=label)
        ax.set(title=f"{modality} missing", xlabel=f"test items without {modality} (%)", ylabel=f"test {metric}")
        ax.set_xticks([100 * f for f in fractions])
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle(f"{name}: missing-modality robustness", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=[], help="a configs/<model>.py to train (repeatable)")
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=WORKDIR", help="a trained workdir")
    parser.add_argument("--data", default=None, help="data directory for --config runs (default: synthetic)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override for --config runs")
    parser.add_argument("--fractions", default="0,0.5,1", help="shares of test items missing the modality")
    parser.add_argument("--metric", default="recall@20")
    parser.add_argument("--view", default="test", help="the evaluation view (cold-start: 'test' is the cold view)")
    parser.add_argument("--seed", type=int, default=0, help="eval.drop_seed: which items lose the modality")
    parser.add_argument("--name", default="robustness")
    parser.add_argument("--results-root", default=os.path.join(ROOT, "experiments", "results"))
    parser.add_argument("--runs-root", default=os.path.join(ROOT, "runs", "robustness"))
    args = parser.parse_args(argv)
    script_logging()
    enable_compilation_cache()
    try:
        fractions = [float(f) for f in args.fractions.split(",")]
        if any(not 0.0 <= f <= 1.0 for f in fractions):
            raise MmjaxError(f"--fractions: expected shares in [0, 1], got {args.fractions}")
        runs = trained_runs(args)
        table = robustness_table(runs, fractions, args.metric, args.view, args.seed)
    except (MmjaxError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    folder = os.path.join(args.results_root, args.name)
    os.makedirs(folder, exist_ok=True)
    text = markdown(args.name, table, fractions, args.metric, args.view)
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(text)
    with open(os.path.join(folder, "robustness.json"), "w") as f:
        json.dump({"name": args.name, "metric": args.metric, "view": args.view, "drop_seed": args.seed,
                   "fractions": fractions, "command": " ".join(["python -m experiments.robustness",
                                                                *(argv if argv is not None else sys.argv[1:])]),
                   "runs": table}, f, indent=2)
    chart(args.name, table, fractions, args.metric, os.path.join(folder, "chart.png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
