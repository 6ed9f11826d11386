"""Seconds from launch to the first epoch line of `python -m mmjax.main`, per model, on one dataset; JSON.

Each model runs as a user would start it (a fresh process, one epoch, a fresh workdir), and the log's
timestamps split the wait into phases: interpreter and imports up to the first log line, loading the data,
building the model's inputs (graphs, kNN item graphs) up to the "training ..." line, and the first epoch
(compilation included) up to its epoch line. The target (issue: startup) is the first epoch line within
15 s of launch on tiktok for every model.

  python experiments/bench_startup.py                                   # graph models on tiktok
  python experiments/bench_startup.py --models lightgcn,magnet --out /tmp/startup.json
  python experiments/bench_startup.py --cache warm    # a second launch: compilations from the cache
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIKTOK = os.path.join(os.path.dirname(ROOT), "shared", "data", "tiktok")
GRAPH_MODELS = ("bpr", "lightgcn", "vbpr", "freedom", "mgcn", "rlmultimodalrec", "magnet")
STAMP = re.compile(r"^[IWE](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d{6})")  # absl's 'I1206 13:54:25.879020'
TARGET_SECONDS = 15.0


def log_seconds(line: str, day: dt.date) -> float | None:
    """The POSIX time of an absl log line, or None for a line without a stamp."""
    match = STAMP.match(line)
    if match is None:
        return None
    clock = dt.datetime.strptime(match.group(3), "%H:%M:%S.%f").time()
    when = dt.datetime.combine(day.replace(month=int(match.group(1)), day=int(match.group(2))), clock)
    return when.timestamp()


def phases(stderr: str, launched: float) -> dict[str, float]:
    """Seconds from launch to the first log line, the data loaded, the training line and epoch 0's line."""
    marks = {"first_log_line": None, "data_loaded": None, "training_line": None, "first_epoch_line": None}
    day = dt.date.fromtimestamp(launched)
    for line in stderr.splitlines():
        seconds = log_seconds(line, day)
        if seconds is None:
            continue
        for mark, found in (("first_log_line", True), ("data_loaded", "dataset '" in line),
                            ("training_line", "] training " in line), ("first_epoch_line", "epoch    0 |" in line)):
            if found and marks[mark] is None:
                marks[mark] = round(seconds - launched, 2)
    return marks


def time_model(model: str, data_dir: str, overrides: list[str]) -> dict:
    """One fresh `mmjax.main` run of `model` for one epoch, its phase marks and exit status."""
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, "-m", "mmjax.main", f"--config=configs/{model}.py", f"--workdir={workdir}",
                   f"--config.data.dir={data_dir}", "--config.train.num_epochs=1", *overrides]
        launched = time.time()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        total = time.time() - launched
    if proc.returncode != 0:
        raise SystemExit(f"error: {model} exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1]}")
    marks = phases(proc.stderr, launched)
    return {"model": model, **marks, "process_seconds": round(total, 2),
            "within_target": marks["first_epoch_line"] is not None and marks["first_epoch_line"] <= TARGET_SECONDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=TIKTOK, help="MMRec data directory (default ../shared/data/tiktok)")
    parser.add_argument("--models", default=",".join(GRAPH_MODELS), help="comma-separated config names")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config override for every model, e.g. --set train.batch_size=4096")
    parser.add_argument("--out", default=None, help="write the JSON here as well as to stdout")
    parser.add_argument("--cache", choices=("cold", "warm"), default="cold",
                        help="cold: each model compiles from nothing (a first launch); warm: each model is "
                             "launched once beforehand, so it loads its compilations from the persistent cache")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data):
        print(f"error: --data {args.data}: no such directory", file=sys.stderr)
        return 2
    sys.path.insert(0, ROOT)
    from mmjax.train.train import git_commit

    overrides = [f"--config.{item}" for item in args.set]
    models = [model.strip() for model in args.models.split(",") if model.strip()]
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MMJAX_COMPILATION_CACHE"] = cache  # a cache of this benchmark's own, never the user's
        if args.cache == "warm":
            for model in models:
                time_model(model, os.path.abspath(args.data), overrides)
        runs = [time_model(model, os.path.abspath(args.data), overrides) for model in models]
    result = {"what": "seconds from launch to each phase of mmjax.main, one fresh process per model",
              "command": " ".join(["python experiments/bench_startup.py", *(argv or sys.argv[1:])]),
              "data": os.path.abspath(args.data), "commit": git_commit(), "cpus": os.cpu_count(),
              "compilation_cache": args.cache, "target_seconds": TARGET_SECONDS, "runs": runs}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
