"""Ablation runner: a base config × a list of override variants × seeds -> one JSON per run, a table, a chart.

  python -m experiments.ablate --config=configs/rlmultimodalrec.py --grid=experiments/grids/rlmultimodalrec.py \
      --data=../shared/data/tiktok --seeds=999,2024,2025 --name=rlmultimodalrec_tiktok
  python -m experiments.ablate --config=configs/lightgcn.py --grid='model.n_layers=1,2,3;model.reg_weight=1e-2,1e-4'

--grid is a python file whose get_grid() returns [(label, {dotted field: value}), ...], or an inline
Cartesian product 'field=v1,v2;field2=v1,v2'. A variant's {"config": "configs/<model>.py"} trains from that
config file instead of --config (baselines beside a model's ablations in one table). A string value may
name the run's seed and this ablation's runs folder as {seed} and {runs}: a phase-2 model reads the phase-1
run of its own seed with 'model.pretrained_workdir': '{runs}/MGCN_seed{seed}' (experiments/grids/egra.py,
whose MGCN row comes first, so each seed's phase 1 is trained before its phase 2). Every run trains through
mmjax.train.train_and_evaluate in runs/ablate/<name>/<variant>_seed<seed> (a killed runner resumes its runs from their checkpoints) and
its results.json is kept as experiments/results/<name>/<variant>_seed<seed>.json. A run whose JSON
exists is not repeated when that JSON was trained with the same config and data (checksum); one that
was not is refused, naming the field (--rerun repeats it, another --name keeps both). Then
<name>/table.md (mean ± standard deviation over seeds, with the reported figures for the same dataset
beside), summary.json and chart.png.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import re
import sys
from typing import Any

import numpy as np

from mmjax.config_files import call_file_function, load_config_file, parse_value, with_overrides
from mmjax.errors import ConfigError, MmjaxError
from mmjax.compilation_cache import enable_compilation_cache
from mmjax.logs import script_logging, workdir_log
from mmjax.train.checkpoint import first_difference, without_fields
from mmjax.train.report import save_figure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
CONFIG_KEY = "config"  # a variant's overrides may name another config file as its base (a baseline model)
Variant = tuple[str, dict[str, Any]]


def load_grid(spec: str) -> list[Variant]:
    """Variants from a grid file (get_grid()) or an inline 'field=v1,v2;field2=...' product."""
    if spec.endswith(".py"):
        variants = call_file_function(spec, "get_grid")
    else:
        axes = []
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            field, _, values = part.partition("=")
            if not values:
                raise ConfigError(f"--grid: expected 'field=v1,v2', got {part!r}")
            axes.append([(field.strip(), parse_value(v.strip())) for v in values.split(",")])
        variants = [(",".join(f"{f.split('.')[-1]}={v}" for f, v in combo), dict(combo))
                    for combo in itertools.product(*axes)]
    labels = [label for label, _ in variants]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--grid: variant labels must be unique, got {labels}")
    return variants


def slug(label: str) -> str:
    """A file-name-safe form of a variant label."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", label).strip("_") or "base"


# Fields a finished run may differ in and still stand for the one asked for: how it was checkpointed,
# distributed, logged and scored in blocks, what --mode=recommend writes, and where its data lay (the data itself
# is compared by checksum).
REUSE_IGNORES = ("train.checkpoint_every", "train.distributed", "train.tensorboard", "train.progress",
                 "eval.batch_size", "recommend", "data.dir")


def json_tree(tree: Any) -> Any:
    """A config dict as JSON stores it (tuples as lists, other values as their str)."""
    return json.loads(json.dumps(tree, default=str))


def with_defaults(recorded: Any, defaults: Any) -> Any:
    """`recorded` with the fields it lacks taken from `defaults`: fields added to the config after a run
    was recorded default to the behaviour it ran with."""
    if not (isinstance(recorded, dict) and isinstance(defaults, dict)):
        return recorded
    return {**defaults, **{key: with_defaults(value, defaults.get(key)) for key, value in recorded.items()}}


_CHECKSUMS: dict[str, str] = {}  # data config (as JSON) -> its dataset's checksum


def dataset_checksum(data_cfg) -> str:
    """The checksum of the dataset a data config loads; each data config is loaded once per process."""
    from mmjax.train.train import load_dataset

    key = json.dumps(json_tree(data_cfg.to_dict()), sort_keys=True)
    if key not in _CHECKSUMS:
        _CHECKSUMS[key] = load_dataset(data_cfg).checksum
    return _CHECKSUMS[key]


def finished_run(path: str, config, defaults: dict) -> dict | None:
    """The results JSON at `path` if it exists and was trained with `config` and its data, else None when
    there is none; ConfigError naming the first differing field when it was trained otherwise.

    `defaults` (the config file's, as JSON) fills the fields a record predates."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)
    recorded = results.get("config")
    if not isinstance(recorded, dict):
        raise ConfigError(f"{path}: holds no 'config', so what it was trained with is unknown; rerun it with "
                          "--rerun or choose another --name")
    wanted = json_tree(config.to_dict())
    difference = first_difference(without_fields(with_defaults(copy.deepcopy(recorded), defaults), REUSE_IGNORES),
                                  without_fields(copy.deepcopy(wanted), REUSE_IGNORES))
    if difference is None:
        checksum = dataset_checksum(config.data)
        if results.get("dataset_checksum") != checksum:
            difference = f"dataset_checksum ({results.get('dataset_checksum')} vs {checksum})"
    if difference is not None:
        raise ConfigError(f"{path}: trained with another configuration than asked for: {difference} (recorded vs "
                          "asked); rerun it with --rerun or choose another --name")
    return results


def run_variant(base, results_dir: str, runs_dir: str, label: str, overrides: dict[str, Any], seed: int,
                rerun: bool, defaults: dict, train: bool = True) -> dict | None:
    """Results of one (variant, seed): its JSON when trained with the same config and data, else (when
    `train`) trained and saved; None for a run neither finished nor to be trained."""
    path = os.path.join(results_dir, f"{slug(label)}_seed{seed}.json")
    overrides = {key: value.format(seed=seed, runs=runs_dir) if isinstance(value, str) else value
                 for key, value in overrides.items()}
    config = with_overrides(base, {**overrides, "train.seed": seed})
    if not rerun:
        finished = finished_run(path, config, defaults)
        if finished is not None or not train:
            if finished is not None:
                logging.info("reused %s: trained with the same config and data", path)
            return finished
    from mmjax.train.train import train_and_evaluate

    workdir = os.path.join(runs_dir, f"{slug(label)}_seed{seed}")
    logging.info("ablation variant %s (seed %d) -> %s", label, seed, workdir)
    with workdir_log(workdir):
        results = train_and_evaluate(config, workdir)
    results = {**results, "variant": label, "overrides": overrides, "config": config.to_dict()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=str)
    return results


def missing_run_folders(overrides: dict[str, Any], seed: int, runs_dir: str) -> list[str]:
    """The '{runs}/...' run folders a variant reads (a phase-1 run) that hold no finished run (results.json):
    its result JSON may have been reused while the folder, with the checkpoint a phase 2 needs, is gone."""
    folders = [value.format(seed=seed, runs=runs_dir) for value in overrides.values()
               if isinstance(value, str) and value.startswith("{runs}")]
    return [folder for folder in folders if not os.path.exists(os.path.join(folder, "results.json"))]


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of one figure over seeds: the
    spread every table of the experiments reports."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise(variants: list[Variant], runs: dict[str, list[dict]],
              columns: tuple[str, ...] = COLUMNS) -> list[dict]:
    """Per variant: mean and standard deviation over seeds of the test metrics, the valid monitor and timings."""
    rows = []
    for label, overrides in variants:
        results = runs[label]
        row = {"variant": label, "overrides": overrides, "seeds": [r["seed"] for r in results],
               "per_seed_test": {str(r["seed"]): {m: r["test"][m] for m in columns} for r in results}}
        for metric in columns:
            mean, std = mean_and_std([r["test"][metric] for r in results])
            row[metric] = {"mean": mean, "std": std}
        monitor = results[0].get("monitor", "recall@20")
        row["monitor"] = monitor
        row["valid_monitor"] = float(np.mean([r["valid"][monitor] for r in results]))
        row["best_epoch"] = float(np.mean([r["best_epoch"] for r in results]))
        row["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"] for r in results]))
        rows.append(row)
    return rows


def reported_for(dataset: str, checksum: str | None = None, task: str = "graph") -> list[dict]:
    """Reported figures on `dataset` under the protocol `task` (a row without a 'task' is the graph
    protocol's) from third_party/reported_results/*.json.

    A row measured on one exact split names its `dataset_checksum`; given the runs' `checksum`, such a row is
    kept only for that data, so a re-split or edited copy in a folder of the same name is not set beside it.
    """
    folder = os.path.join(ROOT, "third_party", "reported_results")
    found = []
    for file_name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if file_name.endswith(".json"):
            with open(os.path.join(folder, file_name)) as f:
                found += [row for row in json.load(f)["rows"] if row["dataset"] == dataset
                          and row.get("task", "graph") == task and (checksum is None or row.get("dataset_checksum", checksum) == checksum)]
    return found


def markdown_table(name: str, dataset: str, rows: list[dict], reported: list[dict],
                   columns: tuple[str, ...] = COLUMNS) -> str:
    """The ablation table: ours (mean ± std over seeds) then the reported figures on the same data."""
    monitor = rows[0]["monitor"] if rows else "recall@20"
    lines = [f"# {name}", "", f"Test metrics at the best-valid epoch on `{dataset}`, mean ± standard deviation "
             "over the seeds listed per row.", "",
             "| variant | seeds | " + " | ".join(columns) + f" | valid {monitor} | best epoch | s/epoch |",
             "|---" * (len(columns) + 5) + "|"]
    for row in rows:
        cells = [f"{row[m]['mean']:.4f} ± {row[m]['std']:.4f}" for m in columns]
        seeds = ",".join(str(s) for s in row["seeds"])
        lines.append(f"| {row['variant']} | {seeds} | " + " | ".join(cells) +
                     f" | {row['valid_monitor']:.4f} | {row['best_epoch']:.0f} | {row['seconds_per_epoch']:.2f} |")
    if reported:
        lines += ["", f"Reported on `{dataset}` (third_party/reported_results):", "",
                  "| model | " + " | ".join(columns) + " | source |", "|---" * (len(columns) + 2) + "|"]
        for row in reported:
            cells = [f"{row['metrics'][m]:.4f}" if m in row["metrics"] else "–" for m in columns]
            lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {row['source']} |")
    return "\n".join(lines) + "\n"


def bar_chart(name: str, rows: list[dict], path: str, metrics: tuple[str, str] = ("recall@20", "ndcg@20")) -> None:
    """Grouped bars of two test metrics per variant, standard deviation over seeds as error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [row["variant"] for row in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2))
    for offset, metric in zip((-0.2, 0.2), metrics):
        ax.bar(x + offset, [r[metric]["mean"] for r in rows], width=0.4, yerr=[r[metric]["std"] for r in rows],
               capsize=3, label=f"test {metric}")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set(title=f"{name} (mean ± sd over seeds)", ylabel="test metric")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a configs/<model>.py file")
    parser.add_argument("--grid", required=True, help="grid file (get_grid()) or 'field=v1,v2;field2=...'")
    parser.add_argument("--data", default=None, help="MMRec data directory (default: the synthetic dataset)")
    parser.add_argument("--seeds", default="999,2024,2025", help="comma-separated seeds")
    parser.add_argument("--name", default=None, help="results folder under experiments/results/")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override applied to every variant, e.g. --set train.num_epochs=200")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL",
                        help="train only this grid variant (repeatable; the table still shows every finished one)")
    parser.add_argument("--rerun", action="store_true", help="train again even where a result JSON exists")
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: tabulate the (variant, seed) runs whose JSON exists")
    parser.add_argument("--columns", default=",".join(COLUMNS),
                        help="test metrics tabulated (the last two are charted), e.g. hr@10,ndcg@10,hr@5,ndcg@5")
    parser.add_argument("--results-root", default=os.path.join(ROOT, "experiments", "results"))
    parser.add_argument("--runs-root", default=os.path.join(ROOT, "runs", "ablate"))
    args = parser.parse_args(argv)
    script_logging()
    enable_compilation_cache()
    try:
        common = {**{k: parse_value(v) for k, v in dict(item.split("=", 1) for item in args.set).items()},
                  "data.dir": args.data}
        bases = {}  # config file -> (its config with --set and --data, its defaults as JSON)

        def base_of(overrides: dict[str, Any]) -> tuple[Any, dict[str, Any], dict]:
            """A variant's base config (its own 'config' file, else --config), its overrides, defaults."""
            path = overrides.get(CONFIG_KEY, args.config)
            if path not in bases:
                file = path if os.path.isabs(path) or os.path.exists(path) else os.path.join(ROOT, path)
                bases[path] = (with_overrides(load_config_file(file), common),
                               json_tree(load_config_file(file).to_dict()))
            return bases[path][0], {k: v for k, v in overrides.items() if k != CONFIG_KEY}, bases[path][1]

        base = base_of({})[0]
        variants = load_grid(args.grid)
        unknown = sorted(set(args.variant) - {label for label, _ in variants})
        if unknown:
            raise ConfigError(f"--variant: {unknown} not in the grid's labels {[label for label, _ in variants]}")
        seeds = [int(s) for s in args.seeds.split(",")]
        dataset = os.path.basename(os.path.normpath(args.data)) if args.data else "synthetic"
        name = args.name or f"ablate_{base.model.name}_{dataset}"
        folder, runs_dir = os.path.join(args.results_root, name), os.path.join(args.runs_root, name)
        runs: dict[str, list[dict]] = {label: [] for label, _ in variants}
        for seed in seeds:  # seed-major: every variant has its first seeds before any has its last
            for label, overrides in variants:
                train = not args.finished_only and (not args.variant or label in args.variant)
                if not train and not os.path.exists(os.path.join(folder, f"{slug(label)}_seed{seed}.json")):
                    continue  # neither finished nor asked for (its config file need not exist yet)
                variant_base, variant_overrides, defaults = base_of(overrides)
                if train:
                    for needed in missing_run_folders(variant_overrides, seed, runs_dir):
                        dependency = next((other for other in variants
                                           if os.path.join(runs_dir, f"{slug(other[0])}_seed{seed}") == needed), None)
                        if dependency is None:
                            raise ConfigError(f"variant {label!r} reads {needed}, which is no run of this grid")
                        logging.info("variant %s reads %s, which this machine does not hold: training %s "
                                     "(seed %d) there first", label, needed, dependency[0], seed)
                        dependency_base, dependency_overrides, dependency_defaults = base_of(dependency[1])
                        run_variant(dependency_base, folder, runs_dir, dependency[0], dependency_overrides, seed,
                                    True, dependency_defaults)
                results = run_variant(variant_base, folder, runs_dir, label, variant_overrides, seed,
                                      args.rerun and train, defaults, train=train)
                if results is not None:
                    runs[label].append(results)
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    missing = [label for label, _ in variants if not runs[label]]
    if len(missing) == len(variants):
        print(f"error: no finished runs of seeds {args.seeds} under {folder}", file=sys.stderr)
        return 2
    columns = tuple(c.strip() for c in args.columns.split(",") if c.strip())
    rows = summarise([v for v in variants if runs[v[0]]], runs, columns)
    checksum = next(run["dataset_checksum"] for label, _ in variants for run in runs[label])
    table = markdown_table(name, dataset, rows, reported_for(dataset, checksum, base.task), columns)
    if missing:
        table += "\nNot run yet: " + "; ".join(missing) + ".\n"
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump({"name": name, "config": args.config, "grid": args.grid, "dataset": dataset,
                   "command": " ".join(["python -m experiments.ablate", *(argv or sys.argv[1:])]), "rows": rows},
                  f, indent=2)
    bar_chart(name, rows, os.path.join(folder, "chart.png"), columns[-2:] if len(columns) >= 2 else columns * 2)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
