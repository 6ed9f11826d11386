"""Missing-modality robustness: each trained model's test metric as a growing share of items loses a modality.

  python -m experiments.robustness --data=../shared/data/tiktok --config=configs/mamex.py \
      --config=configs/dropoutnet.py --config=configs/clcrec.py --name=robustness_tiktok
  python -m experiments.robustness --run 'MAMEX=runs/ablate/coldstart_tiktok/MAMEX_seed*' --run ...

Each --config is trained (in runs/robustness/<name>/<model>; a finished run is reused, a killed one resumes)
or each --run names finished workdirs (a shell-style pattern, or the same label repeated: that label's figures
are then the mean and standard deviation over its runs, e.g. over seeds). Then, for every modality of the data
and every --fractions value, `--mode=eval` is repeated with eval.drop_modality / eval.drop_fraction
(train/missing.py: a seeded share of the items each test view ranks has that modality's features zeroed and
masked; the model's inputs are rebuilt from them, the trained parameters kept). Writes
experiments/results/<name>/robustness.json, table.md
(the --metric of the test view per model, modality and share) and chart.png (one panel per modality).
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
from typing import Any

from experiments.ablate import mean_and_std
from mmjax.compilation_cache import enable_compilation_cache
from mmjax.config_files import load_config_file, parse_value, with_overrides
from mmjax.errors import MmjaxError
from mmjax.logs import script_logging, workdir_log
from mmjax.train.missing import missing_view_name
from mmjax.train.report import save_figure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trained_runs(args: argparse.Namespace) -> dict[str, list[str]]:
    """label -> finished workdirs: the --run ones (patterns expanded), and each --config trained (or reused)
    under runs/robustness."""
    from mmjax.train.train import train_and_evaluate

    runs: dict[str, list[str]] = {}
    for item in args.run:
        label, sep, pattern = item.partition("=")
        workdirs = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        unfinished = [w for w in workdirs if not os.path.exists(os.path.join(w, "results.json"))]
        if not sep or not label or not workdirs or unfinished:
            raise MmjaxError(f"--run {item}: expected LABEL=WORKDIR (or a pattern) of finished training runs "
                             f"(with results.json){'; unfinished: ' + ', '.join(unfinished) if unfinished else ''}")
        runs.setdefault(label, []).extend(w for w in workdirs if w not in runs.get(label, []))
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    for path in args.config:
        config = with_overrides(load_config_file(path), {**overrides, "data.dir": args.data})
        label = config.model.name
        workdir = os.path.join(args.runs_root, args.name, label)
        with workdir_log(workdir):
            train_and_evaluate(config, workdir)
        runs.setdefault(label, []).append(workdir)
    if not runs:
        raise MmjaxError("expected at least one --config to train or --run of a trained workdir")
    return runs


def robustness_table(runs: dict[str, list[str]], fractions: list[float], metric: str, view: str,
                     seed: int) -> dict[str, Any]:
    """{label: {modality: {share: mean metric}}} of `view` with each modality missing for each share of items,
    with the standard deviation over the label's runs and each run's own figures."""
    return {label: summarise(workdirs, [_run_robustness(workdir, fractions, metric, view, seed)
                                        for workdir in workdirs])
            for label, workdirs in runs.items()}


def summarise(workdirs: list[str], per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """One label's entry: its runs' own figures, and their mean and standard deviation (mean_and_std, as the
    ablation tables) complete and per modality and share; modalities every run has."""
    modalities = [m for m in per_run[0]["missing"] if all(m in run["missing"] for run in per_run)]
    spread = {m: {share: mean_and_std([run["missing"][m][share] for run in per_run])
                  for share in per_run[0]["missing"][m]} for m in modalities}
    complete = mean_and_std([run["complete"] for run in per_run])
    return {"workdirs": workdirs, "model": per_run[0]["model"], "runs": per_run,
            "complete": complete[0], "complete_std": complete[1],
            "missing": {m: {share: ms[0] for share, ms in row.items()} for m, row in spread.items()},
            "missing_std": {m: {share: ms[1] for share, ms in row.items()} for m, row in spread.items()}}


def _run_robustness(workdir: str, fractions: list[float], metric: str, view: str, seed: int) -> dict[str, Any]:
    """One finished run's `view` metric, complete and with each modality missing for each share of items."""
    from mmjax.train.train import load_run_config
    from mmjax.train.train import evaluate_best

    config = load_run_config(workdir)
    base = evaluate_best(config, workdir)
    entry = {"workdir": workdir, "model": config.model.name, "seed": config.train.seed,
             "best_epoch": base["best_epoch"], "complete": base[view][metric], "missing": {}}
    for modality in _modalities(config):
        row = {}
        for fraction in fractions:
            config.eval.drop_modality, config.eval.drop_fraction, config.eval.drop_seed = modality, fraction, seed
            out = evaluate_best(config, workdir)
            row[f"{fraction:g}"] = out[missing_view_name(view, modality, fraction)][metric]
        entry["missing"][modality] = row
        logging.info("%s without %s: %s", workdir, modality, row)
    return entry


def _modalities(config) -> list[str]:
    """The feature modalities of a run's dataset."""
    from mmjax.train.train import load_dataset

    return list(load_dataset(config.data).modalities)


def markdown(name: str, table: dict[str, Any], fractions: list[float], metric: str, view: str) -> str:
    """One row per (model, modality): the metric at each share of items missing the modality (mean ± standard
    deviation where a label has several runs), and the relative change at 100 %, computed from the means."""
    head = ("| model | runs (seeds) | missing modality | " + " | ".join(f"{f:.0%} missing" for f in fractions)
            + " | change at 100 % |")
    lines = [f"# {name}: test {metric} ({view} view) with a modality missing", "", head,
             "|" + "---|" * (len(fractions) + 4)]
    for label, entry in table.items():
        seeds = ", ".join(str(run["seed"]) for run in entry["runs"])
        for modality, row in entry["missing"].items():
            spread = entry["missing_std"][modality]
            cells = [f"{row[f'{f:g}']:.4f}" + (f" ± {spread[f'{f:g}']:.4f}" if len(entry["runs"]) > 1 else "")
                     for f in fractions]
            full, gone = row.get("0", entry["complete"]), row.get("1", row[f"{fractions[-1]:g}"])
            drop = f"{(gone - full) / full:+.1%}" if full else "n/a"
            lines.append(f"| {label} | {len(entry['runs'])} ({seeds}) | {modality} | " + " | ".join(cells)
                         + f" | {drop} |")
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
                shares = [f"{f:g}" for f in fractions]
                ax.errorbar([100 * f for f in fractions], [entry["missing"][modality][s] for s in shares],
                            yerr=[entry["missing_std"][modality][s] for s in shares], marker="o", capsize=3,
                            label=f"{label} (n={len(entry['runs'])})")
        ax.set(title=f"{modality} missing", xlabel=f"test items without {modality} (%)", ylabel=f"test {metric}")
        ax.set_xticks([100 * f for f in fractions])
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle(f"{name}: missing-modality robustness", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=[], help="a configs/<model>.py to train (repeatable)")
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=WORKDIR",
                        help="trained workdir(s): a path or a quoted pattern; a repeated label averages its runs")
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
