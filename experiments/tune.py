"""Hyper-parameter search on the valid view (Optuna), then the chosen config over seeds with test.

  python -m experiments.tune --config=configs/lightgcn.py --space=experiments/spaces/lightgcn.py \
      --data=../shared/data/baby --trials=20 --seeds=2020,2021,2022 --name=lightgcn_baby
  python -m experiments.tune --config=configs/bpr.py \
      --space='train.learning_rate=loguniform(1e-4,1e-1);model.reg_weight=choice(0.0,1e-4,1e-2)'

Each trial trains one config (seed: the first of --seeds) with eval.selection_only on: only the valid view
is ever evaluated, so nothing of test enters the choice. The valid monitor of every evaluated epoch is
reported to the study, and a trial below the median of the earlier trials at the same epoch is pruned
(--prune-after trials first, --warmup evaluations each). The study lives in
runs/tune/<name>/study.db (SQLite): a killed search run again with the same command goes on where it was,
an interrupted trial resuming from its checkpoints, and the sampler is seeded per trial number, so a resumed
search draws the trials an uninterrupted one would. A study started with another config, space or data is
refused. Then the best trial's overrides train over --seeds through experiments.ablate's runner; test
metrics are reported for that config only, in experiments/results/<name>/: table.md, summary.json,
trials.json (every trial: params, state, valid value), best.json (the overrides and the command that
reproduces the run) and history.png (valid value per trial, best so far).

--space is a python file whose get_space() returns {dotted field: distribution}, or inline
'field=dist;field=dist'. Distributions: uniform(lo,hi), loguniform(lo,hi), int(lo,hi), choice(v1,v2,...);
in a file, tuples such as ("loguniform", 1e-4, 1e-1) or ("choice", 1, 2, 3).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shlex
import sys
from typing import Any

from mmjax.config_files import call_file_function, field_parent, load_config_file, parse_value, with_overrides
from mmjax.errors import ConfigError, MmjaxError
from mmjax.compilation_cache import enable_compilation_cache
from mmjax.logs import script_logging, workdir_log
from mmjax.train.checkpoint import first_difference, without_fields

from experiments import ablate

ROOT = ablate.ROOT
KINDS = ("uniform", "loguniform", "int", "choice")
Space = dict[str, tuple]
INLINE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*=\s*([a-z]+)\((.*)\)\s*")


def parse_space(spec: str) -> Space:
    """{field: (kind, *args)} from a space file (get_space()) or an inline 'field=kind(args);...' string."""
    if spec.endswith(".py"):
        raw = call_file_function(spec, "get_space")
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"{spec}: get_space() must return a non-empty dict of field -> distribution")
        space = {str(field): tuple(dist) if isinstance(dist, (tuple, list)) else dist for field, dist in raw.items()}
    else:
        space = {}
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            match = INLINE.fullmatch(part)
            if match is None:
                raise ConfigError(f"--space: expected 'field=kind(args)' with kind in {KINDS}, got {part!r}")
            field, kind, args = match.groups()
            values = parse_value(f"({args},)") if args.strip() else ()
            if not isinstance(values, tuple):
                raise ConfigError(f"--space {field}: expected python literals in {kind}(...), got {args!r}")
            space[field] = (kind, *values)
    for field, dist in space.items():
        check_distribution(field, dist)
    return space


def check_distribution(field: str, dist: Any) -> None:
    """ConfigError unless `dist` is a known distribution with valid bounds or choices."""
    if not isinstance(dist, tuple) or not dist or dist[0] not in KINDS:
        raise ConfigError(f"--space {field}: expected (kind, ...) with kind in {KINDS}, got {dist!r}")
    kind, args = dist[0], dist[1:]
    if kind == "choice":
        if not args or not all(a is None or isinstance(a, (bool, int, float, str)) for a in args):
            raise ConfigError(f"--space {field}: choice() needs one or more values, each None, a bool, a number "
                              f"or a string, got {args}")
        return
    numeric = len(args) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    if not numeric or not args[0] < args[1] or (kind == "loguniform" and args[0] <= 0) or \
            (kind == "int" and not all(isinstance(a, int) for a in args)):
        raise ConfigError(f"--space {field}: {kind}(lo, hi) needs numbers lo < hi"
                          f"{' > 0' if kind == 'loguniform' else ''}{' (integers)' if kind == 'int' else ''}, "
                          f"got {args}")


def distributions(space: Space) -> dict[str, Any]:
    """Optuna distributions of the space, by field."""
    import optuna.distributions as d

    out = {}
    for field, (kind, *args) in space.items():
        if kind == "choice":
            out[field] = d.CategoricalDistribution(args)
        elif kind == "int":
            out[field] = d.IntDistribution(args[0], args[1])
        else:
            out[field] = d.FloatDistribution(float(args[0]), float(args[1]), log=kind == "loguniform")
    return out


def trial_workdir(runs_dir: str, params: dict[str, Any]) -> str:
    """A trial's workdir, named by its parameters: a re-asked interrupted trial resumes its checkpoints."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(runs_dir, "trials", digest)


def study_identity(base, space: Space, trial_seed: int) -> dict[str, Any]:
    """What a resumed study must share with the one on disk: config (less ablate's REUSE_IGNORES), space,
    trial seed and dataset checksum."""
    return {"config": without_fields(ablate.json_tree(base.to_dict()), ablate.REUSE_IGNORES),
            "space": ablate.json_tree(space), "trial_seed": trial_seed,
            "dataset_checksum": ablate.dataset_checksum(base.data)}


def open_study(storage_path: str, name: str, identity: dict[str, Any], prune_after: int, warmup: int):
    """The study at `storage_path` (created if new); ConfigError when it was started with another identity."""
    import optuna

    os.makedirs(os.path.dirname(storage_path), exist_ok=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=warmup)
    study = optuna.create_study(storage=f"sqlite:///{storage_path}", study_name=name, direction="maximize",
                                pruner=pruner, load_if_exists=True)
    recorded = study.user_attrs.get("identity")
    if recorded is None:
        study.set_user_attr("identity", identity)
    else:
        difference = first_difference(recorded, json.loads(json.dumps(identity)))
        if difference is not None:
            raise ConfigError(f"{storage_path}: this study was started with another setup: {difference} "
                              "(recorded vs asked); choose another --name or delete the study")
    return study


def requeue_interrupted(study) -> int:
    """Marks trials left RUNNING by a killed search as failed-interrupted and asks for their parameters
    again (first), so they resume from their checkpoints; returns how many."""
    import optuna

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    if stale:
        study.set_user_attr("interrupted", interrupted(study) + [t.number for t in stale])
    for trial in stale:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params)
    return len(stale)


def interrupted(study) -> list[int]:
    """Numbers of the trials a killed search left behind (asked again under a new number)."""
    return list(study.user_attrs.get("interrupted", []))


def finished_count(study) -> int:
    """Trials that ran to an outcome (complete, pruned or failed), interrupted ones aside."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    skipped = set(interrupted(study))
    return sum(t.state in done and t.number not in skipped for t in study.get_trials(deepcopy=False))


def run_trial(study, base, space: Space, runs_dir: str, trial_seed: int, sampler_seed: int) -> None:
    """Asks the study for one trial, trains it on valid only and tells the outcome. The sampler is seeded by
    the number of trials finished before it, so a resumed search asks what an uninterrupted one would."""
    import optuna
    from mmjax.train.loop import NonFiniteTrainingError
    from mmjax.train.train import train_and_evaluate

    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + finished_count(study))
    trial = study.ask(distributions(space))
    params = dict(trial.params)
    config = with_overrides(base, {**params, "train.seed": trial_seed, "eval.selection_only": True})
    workdir = trial_workdir(runs_dir, params)
    trial.set_user_attr("workdir", workdir)
    logging.info("trial %d: %s -> %s", trial.number, params, workdir)

    def observe(epoch: int, metrics: dict[str, float]) -> None:
        trial.report(float(metrics[config.eval.monitor]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"valid {config.eval.monitor} {metrics[config.eval.monitor]:.4f} at epoch "
                                     f"{epoch} is below the median of the earlier trials")

    try:
        with workdir_log(workdir):
            results = train_and_evaluate(config, workdir, on_evaluation=observe)
    except optuna.TrialPruned as pruned:
        logging.info("trial %d pruned: %s", trial.number, pruned)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except NonFiniteTrainingError as error:  # a diverging setting is an outcome of the search, not a crash
        logging.info("trial %d failed: %s", trial.number, error)
        trial.set_user_attr("error", str(error))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    except MmjaxError:  # bad input: the search stops (an interrupt leaves the trial running, to resume)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    value = float(results["valid"][config.eval.monitor])
    trial.set_user_attr("best_epoch", int(results["best_epoch"]))
    study.tell(trial, value)
    logging.info("trial %d: valid %s %.4f (best epoch %d)", trial.number, config.eval.monitor, value,
                 results["best_epoch"])


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial: number, state (INTERRUPTED for one asked again), params, valid value (None unless
    complete), its last reported value, best epoch or error."""
    skipped = set(interrupted(study))
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": "INTERRUPTED" if t.number in skipped else t.state.name,
                     "params": t.params, "valid": t.value if t.state.name == "COMPLETE" else None,
                     "last_reported": t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values
                     else None, "epochs_reported": len(t.intermediate_values),
                     **{k: v for k, v in t.user_attrs.items() if k in ("best_epoch", "error")}})
    return rows


def history_chart(name: str, monitor: str, rows: list[dict[str, Any]], path: str) -> None:
    """Valid value of each completed trial (pruned ones at their last report), and the best so far."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mmjax.train.report import integer_epochs, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    done = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_reported"] is not None]
    ax.scatter([r["number"] for r in done], [r["valid"] for r in done], label="complete", zorder=3)
    ax.scatter([r["number"] for r in pruned], [r["last_reported"] for r in pruned], marker="x", color="grey",
               label="pruned (last report)", zorder=3)
    best, xs, ys = float("-inf"), [], []
    for r in done:
        best = max(best, r["valid"])
        xs.append(r["number"])
        ys.append(best)
    ax.step(xs, ys, where="post", color="C1", label="best so far")
    ax.set(title=f"{name}: search on valid", xlabel="trial", ylabel=f"valid {monitor}")
    integer_epochs(ax)  # whole trial numbers
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def overrides_command(args, params: dict[str, Any], seed: int) -> str:
    """The mmjax.main command that trains the chosen config with `seed` (the trials' seed: its valid figure
    is the trial's)."""
    flags = [f"--config={args.config}"] + ([f"--config.data.dir={args.data}"] if args.data else [])
    overrides = {**dict(s.split("=", 1) for s in args.set), **params, "train.seed": seed}
    flags += [f"--config.{k}={v}" for k, v in overrides.items()]
    return "python -m mmjax.main " + " ".join(shlex.quote(f) for f in flags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a configs/<model>.py file")
    parser.add_argument("--space", required=True, help="space file (get_space()) or 'field=kind(args);...'")
    parser.add_argument("--data", default=None, help="data directory (default: the synthetic dataset)")
    parser.add_argument("--trials", type=int, default=20, help="trials to finish (complete, pruned or failed)")
    parser.add_argument("--seeds", default="2020,2021,2022",
                        help="seeds of the final runs of the chosen config; the first also trains every trial")
    parser.add_argument("--name", default=None, help="study and results folder name")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override applied to every trial and final run, e.g. --set train.num_epochs=100")
    parser.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (per trial number)")
    parser.add_argument("--prune-after", type=int, default=5, help="trials that are never pruned (the first)")
    parser.add_argument("--warmup", type=int, default=5, help="evaluations of a trial before it may be pruned")
    parser.add_argument("--no-final", action="store_true", help="search only: no final runs, no test")
    parser.add_argument("--results-root", default=os.path.join(ROOT, "experiments", "results"))
    parser.add_argument("--runs-root", default=os.path.join(ROOT, "runs", "tune"))
    args = parser.parse_args(argv)
    script_logging()
    enable_compilation_cache()
    try:
        import optuna
    except ImportError:
        print("error: experiments.tune needs optuna: pip install -e '.[tune]'", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if args.trials < 1:
            raise ConfigError(f"--trials: expected >= 1, got {args.trials}")
        seeds = [int(s) for s in args.seeds.split(",")]
        space = parse_space(args.space)
        common = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
        base = with_overrides(load_config_file(args.config), {**common, "data.dir": args.data})
        for field in space:  # every field exists (did-you-mean otherwise) before anything trains
            field_parent(base, field, what="--space ")
        dataset = os.path.basename(os.path.normpath(args.data)) if args.data else "synthetic"
        name = args.name or f"tune_{base.model.name}_{dataset}"
        runs_dir = os.path.join(args.runs_root, name)
        study = open_study(os.path.join(runs_dir, "study.db"), name, study_identity(base, space, seeds[0]),
                           args.prune_after, args.warmup)
        requeued = requeue_interrupted(study)
        if requeued:
            logging.info("%d interrupted trial(s) asked again: they resume from their checkpoints", requeued)
        done = finished_count(study)
        if done:
            logging.info("study %s: %d of %d trials already finished", name, done, args.trials)
        while finished_count(study) < args.trials:
            run_trial(study, base, space, runs_dir, seeds[0], args.sampler_seed)
        rows = trial_rows(study)
        complete = [r for r in rows if r["state"] == "COMPLETE"]
        if not complete:
            raise MmjaxError(f"study {name}: no trial completed ({len(rows)} pruned or failed); see {runs_dir}")
        best = max(complete, key=lambda r: (r["valid"], -r["number"]))
        folder = os.path.join(args.results_root, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "trials.json"), "w") as f:
            json.dump({"name": name, "monitor": base.eval.monitor, "space": ablate.json_tree(space),
                       "trial_seed": seeds[0], "trials": rows}, f, indent=2, default=str)
        with open(os.path.join(folder, "best.json"), "w") as f:
            json.dump({"trial": best["number"], "overrides": best["params"], "valid": best["valid"],
                       "monitor": base.eval.monitor, "command": overrides_command(args, best["params"], seeds[0])}, f,
                      indent=2, default=str)
        history_chart(name, base.eval.monitor, rows, os.path.join(folder, "history.png"))
        logging.info("best trial %d: valid %s %.4f with %s", best["number"], base.eval.monitor, best["valid"],
                     best["params"])
        if args.no_final:
            return 0
        label = "tuned"
        defaults = ablate.json_tree(load_config_file(args.config).to_dict())
        finals = [ablate.run_variant(base, folder, os.path.join(runs_dir, "final"), label, best["params"], seed,
                                     False, defaults) for seed in seeds]
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    columns = ablate.COLUMNS if base.task == "graph" else ("hr@10", "mrr@10", "recall@10", "ndcg@10")
    summary = ablate.summarise([(label, best["params"])], {label: finals}, columns)
    table = ablate.markdown_table(name, dataset, summary, [], columns)
    table += (f"\nChosen on valid {base.eval.monitor} ({best['valid']:.4f}, trial {best['number']} of "
              f"{len(rows)}, seed {seeds[0]}): {best['params']}. Test was computed for this config only.\n")
    with open(os.path.join(folder, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump({"name": name, "config": args.config, "space": ablate.json_tree(space), "dataset": dataset,
                   "command": " ".join(["python -m experiments.tune", *(argv or sys.argv[1:])]), "rows": summary},
                  f, indent=2, default=str)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
