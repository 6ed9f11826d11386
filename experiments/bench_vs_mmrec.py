"""Training-epoch and evaluation-pass seconds of mmjax and an MMRec checkout, run interleaved on one machine.

Each case (model on a dataset) runs MMRec, then mmjax, --repeats times over, under each thread setting: both
sides on two threads (cores 0-1), then both pinned to core 0 on one thread. Same data, same seed, same
hyperparameters (MMRec's yaml with the values our configs/<model>.py take from it), --epochs epochs each. A
side's figure is the median over its epochs after the first (which compiles, or warms up); the ratio is
MMRec's seconds over mmjax's, repeat by repeat. MMRec runs in its own Python (--mmrec-python, with torch)
through experiments/run_mmrec.py; mmjax runs `python -m mmjax.main` as a user does, and both log one valid
evaluation pass per epoch. Without --mmrec the benchmark says so and writes nothing.

  python experiments/bench_vs_mmrec.py --mmrec /work/mmrec --mmrec-python /work/mmrec-venv/bin/python \
      --cases lightgcn:baby,freedom:tiktok,mgcn:tiktok --out experiments/results/bench_vs_mmrec.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
# MMRec model name and the --set values that make its yaml grid the single setting our config uses.
MMREC_SETTINGS = {
    "lightgcn": ("LightGCN", {"n_layers": 1, "reg_weight": 0.01}),
    "freedom": ("FREEDOM", {"dropout": 0.8, "reg_weight": 0.0}),
    "mgcn": ("MGCN", {"cl_loss": 0.01}),
}
TEXT_SLOT = {"tiktok": "audio"}  # the modality in MMRec's text slot, where the dataset has no text
THREAD_SETTINGS = {"two_threads": ("0,1", 2), "one_core": ("0", 1)}
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def later_epochs_median(seconds: list[float]) -> float:
    """Median over the epochs after the first; the first compiles (mmjax) or warms caches (MMRec)."""
    if len(seconds) < 2:
        raise ValueError(f"need at least two epochs of timings, got {len(seconds)}")
    return float(statistics.median(seconds[1:]))


def run_quietly(command: list[str], **kwargs) -> None:
    """Runs one side; on failure, raises with the tail of its output so the cause is on screen."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")


def run_mmrec(args, model: str, dataset: str, cpus: str, threads: int, workdir: str) -> dict:
    name, settings = MMREC_SETTINGS[model]
    out = os.path.join(workdir, "mmrec.json")
    command = ["taskset", "-c", cpus, args.mmrec_python, os.path.join(ROOT, "experiments", "run_mmrec.py"),
               "--mmrec", args.mmrec, "--model", name, "--data", os.path.join(args.data_root, dataset),
               "--seeds", str(args.seed), "--threads", str(threads), "--out", out,
               "--text-slot", TEXT_SLOT.get(dataset, "text"), "--set", f"epochs={args.epochs}",
               "--set", "stopping_step=1000",
               *[item for key, value in settings.items() for item in ("--set", f"{key}={value}")]]
    run_quietly(command)
    with open(out) as f:
        record = json.load(f)
    run = record["runs"][0]
    return {"train_seconds": run["train_seconds"], "eval_seconds": run["eval_seconds"],
            "dataset_files_sha256": record["dataset_files_sha256"], "mmrec_commit": record["mmrec_commit"],
            "torch": record["torch"], "threads": record["threads"]}


def run_mmjax(args, model: str, dataset: str, cpus: str, threads: int, workdir: str) -> dict:
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {ONE_THREAD_XLA}".strip()
    command = ["taskset", "-c", cpus, sys.executable, "-m", "mmjax.main",
               f"--config={os.path.join(ROOT, 'configs', model + '.py')}", f"--workdir={workdir}/mmjax",
               f"--config.data.dir={os.path.join(args.data_root, dataset)}",
               f"--config.train.num_epochs={args.epochs}", f"--config.train.seed={args.seed}",
               "--config.train.patience=1000", "--config.train.progress=none"]
    run_quietly(command, cwd=ROOT, env=env)
    with open(os.path.join(workdir, "mmjax", "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    with open(os.path.join(workdir, "mmjax", "results.json")) as f:
        results = json.load(f)
    return {"train_seconds": [r["train_seconds"] for r in records],
            "eval_seconds": [r["eval_seconds"] for r in records if "eval_seconds" in r],
            "dataset_checksum": results.get("dataset_checksum")}


def bench_case(args, model: str, dataset: str) -> dict:
    case = {"model": model, "dataset": dataset, "mmrec_settings": MMREC_SETTINGS[model][1], "settings": {}}
    for setting, (cpus, threads) in THREAD_SETTINGS.items():
        pairs = []
        for repeat in range(args.repeats):
            sides = {}
            for side, runner in (("mmrec", run_mmrec), ("mmjax", run_mmjax)):
                with tempfile.TemporaryDirectory() as workdir:
                    sides[side] = runner(args, model, dataset, cpus, threads, workdir)
                for kind in ("train", "eval"):
                    sides[side][f"{kind}_median"] = round(later_epochs_median(sides[side][f"{kind}_seconds"]), 4)
                print(f"{model} on {dataset}, {setting}, repeat {repeat}: {side} train "
                      f"{sides[side]['train_median']:.3f} s/epoch, eval {sides[side]['eval_median']:.3f} s/pass",
                      file=sys.stderr, flush=True)
            pairs.append({**sides, "train_ratio": round(sides["mmrec"]["train_median"] / sides["mmjax"]["train_median"], 2),
                          "eval_ratio": round(sides["mmrec"]["eval_median"] / sides["mmjax"]["eval_median"], 2)})
        case["settings"][setting] = {"cpus": cpus, "threads": threads, "pairs": pairs,
                                     "train_ratios": [p["train_ratio"] for p in pairs],
                                     "eval_ratios": [p["eval_ratio"] for p in pairs]}
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmrec", default=None, help="an MMRec checkout (the folder holding src/)")
    parser.add_argument("--mmrec-python", default=None, help="the Python with torch that runs MMRec")
    parser.add_argument("--cases", default="lightgcn:baby,freedom:tiktok,mgcn:tiktok",
                        help="comma-separated model:dataset, models among " + ", ".join(MMREC_SETTINGS))
    parser.add_argument("--data-root", default=DATA, help="the folder holding the datasets")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.mmrec is None:
        print("bench_vs_mmrec: skipped, no MMRec checkout given (--mmrec PATH)", file=sys.stderr)
        return 0
    cases = [case.split(":") for case in args.cases.split(",")]
    for case in cases:
        if len(case) != 2 or case[0] not in MMREC_SETTINGS:
            print(f"error: --cases: expected model:dataset with a model among {sorted(MMREC_SETTINGS)}, got "
                  f"{':'.join(case)!r}", file=sys.stderr)
            return 2
    if args.epochs < 2:
        print(f"error: --epochs: expected at least 2 (the first is not timed), got {args.epochs}", file=sys.stderr)
        return 2
    args.mmrec, args.data_root = os.path.abspath(args.mmrec), os.path.abspath(args.data_root)
    args.mmrec_python = args.mmrec_python or sys.executable
    from experiments.bench_epoch import emit_benchmark

    results = [bench_case(args, model, dataset) for model, dataset in cases]
    emit_benchmark("mmjax_vs_mmrec_interleaved", "python experiments/bench_vs_mmrec.py", args, cases=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
