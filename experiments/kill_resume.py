"""Kill-and-resume on real data: a run SIGKILLed mid-training and restarted with the same command must end
with the results of an uninterrupted run; then --mode=eval must reproduce them and --mode=recommend write
the top-K lists. Writes experiments/results/kill_resume_<model>_<dataset>.json.

  python experiments/kill_resume.py                                   # LightGCN on ../shared/data/baby
  python experiments/kill_resume.py --data ../shared/data/tiktok --kill-after 12
  # MAGNET killed in stage 1 and, separately, mid-ramp in stage 2 (each against one uninterrupted run)
  python experiments/kill_resume.py --model magnet --data ../shared/data/tiktok --kill-after 3,12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BABY = os.path.join(os.path.dirname(ROOT), "shared", "data", "baby")
COMPARED = ("best_epoch", "epochs_run", "valid", "test")


def command(args, workdir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mmjax.main", f"--config=configs/{args.model}.py", f"--workdir={workdir}",
            f"--config.data.dir={os.path.abspath(args.data)}", f"--config.train.seed={args.seed}", *extra]


def run(cmd: list[str]) -> float:
    """Runs to completion; wall seconds."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def read(workdir: str, name: str) -> dict:
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def read_records(workdir: str) -> list[dict]:
    """metrics.jsonl without the timings (which differ between runs)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in records]


def kill_and_resume(args, killed_dir: str, kill_after: int, reference: dict, reference_records: list[dict]) -> dict:
    """Starts the run, SIGKILLs it once `kill_after` epochs are logged, runs the same command again, then
    --mode=eval and --mode=recommend; what matched the uninterrupted run."""
    proc = subprocess.Popen(command(args, killed_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = os.path.join(killed_dir, "metrics.jsonl")
    while proc.poll() is None:
        if os.path.exists(metrics):
            with open(metrics) as f:
                if sum(1 for _ in f) >= kill_after:
                    break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    killed_returncode = proc.wait()
    with open(metrics) as f:
        epochs_logged_at_kill = sum(1 for _ in f)
    at_kill = read_records(killed_dir)[-1]
    checkpoints_at_kill = sorted(os.listdir(os.path.join(killed_dir, "checkpoints", "latest")))
    resume_seconds = run(command(args, killed_dir))
    run(command(args, killed_dir, "--mode=eval"))
    run(command(args, killed_dir, "--mode=recommend"))
    resumed, evaluated = read(killed_dir, "results.json"), read(killed_dir, "eval.json")
    with open(os.path.join(killed_dir, "recommendations.csv")) as f:
        recommendation_rows = sum(1 for _ in f) - 1
    return {
        "kill_after": kill_after, "killed_returncode": killed_returncode,
        "epochs_logged_at_kill": epochs_logged_at_kill, "latest_checkpoints_at_kill": checkpoints_at_kill,
        "schedule_at_kill": at_kill.get("schedule"),
        "resumed_equals_uninterrupted": {key: resumed[key] == reference[key] for key in COMPARED},
        "per_epoch_records_equal": read_records(killed_dir) == reference_records,
        "eval_mode_equals_results": {"best_epoch": evaluated["best_epoch"] == resumed["best_epoch"],
                                     "valid": evaluated["valid"] == resumed["valid"],
                                     "test": evaluated["test"] == resumed["test"]},
        "recommendation_rows": recommendation_rows, "wall_seconds_resumed_part": round(resume_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lightgcn")
    parser.add_argument("--data", default=BABY)
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--kill-after", type=lambda v: [int(x) for x in v.split(",")], default=[10],
                        help="SIGKILL once this many epochs are logged; comma-separated for several kills")
    args = parser.parse_args()
    dataset = os.path.basename(os.path.normpath(args.data))
    base = os.path.join(ROOT, "runs", "kill_resume", f"{args.model}_{dataset}")
    shutil.rmtree(base, ignore_errors=True)
    reference_dir = os.path.join(base, "uninterrupted")

    reference_seconds = run(command(args, reference_dir))
    reference = read(reference_dir, "results.json")
    reference_records = read_records(reference_dir)
    kills = [kill_and_resume(args, os.path.join(base, f"killed_after_{k}"), k, reference, reference_records)
             for k in args.kill_after]
    out = {
        "what": "SIGKILL mid-run, same command again; results.json and the per-epoch records vs an "
                "uninterrupted run; eval and recommend on the resumed run",
        "command": " ".join(command(args, "<workdir>")), "commit": reference["commit"],
        "dataset_checksum": reference["dataset_checksum"], "seed": args.seed,
        "uninterrupted": {key: reference[key] for key in COMPARED + ("seconds_per_epoch", "seconds_per_eval")},
        "wall_seconds_uninterrupted": round(reference_seconds, 1),
        "kills": kills,
    }
    path = os.path.join(ROOT, "experiments", "results", f"kill_resume_{args.model}_{dataset}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
