"""SASRec's training epoch and full evaluation pass, mmjax against RecBole 1.2.1, in one run; CAMMSR's cost
relative to SASRec's. Writes JSON.

Both sides run on the same data (default ../shared/data/scientific), the same settings (RecBole's SASRec
settings, configs/sasrec.py) and the same CPU cores: each side is a subprocess pinned with `taskset` to
the first --threads cores, RecBole with that many torch threads. mmjax's side is experiments/bench_epoch.py
(one epoch and eval pass to compile, then the median of --epochs); RecBole's is
experiments/reproduce_recbole.py --bench (the median of its epochs after the first, and of its valid
passes), run from the RecBole environment given by --recbole-python (installed outside the repository:
python3 -m venv /work/recbole-venv && /work/recbole-venv/bin/pip install torch==2.13.0 recbole==1.2.1).

  python experiments/bench_sequential.py --out experiments/results/bench_sequential_scientific.json
  python experiments/bench_sequential.py --threads 2 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCIENTIFIC = os.path.join(os.path.dirname(ROOT), "shared", "data", "scientific")


def pinned(command: list[str], threads: int) -> list[str]:
    """The command pinned to the first `threads` cores when taskset is available."""
    if shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", ",".join(str(c) for c in range(threads))] + command


def run_json(command: list[str], out: str, env: dict | None = None) -> dict:
    """Runs a benchmark subprocess that writes JSON to `out`; its stderr tail on failure."""
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SCIENTIFIC)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per side, after a first one")
    parser.add_argument("--threads", type=int, default=1, help="cores (and torch threads) each side gets")
    parser.add_argument("--models", default="sasrec,cammsr", help="mmjax configs timed; the first is the one "
                                                                  "compared with RecBole's SASRec")
    parser.add_argument("--recbole-python", default="/work/recbole-venv/bin/python")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours_out, recbole_out = os.path.join(tmp, "mmjax.json"), os.path.join(tmp, "recbole.json")
        env = dict(os.environ)
        if args.threads == 1:  # one XLA compute thread, as torch.set_num_threads(1)
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1").strip()
        ours = run_json(pinned([sys.executable, "experiments/bench_epoch.py", f"--data={args.data}",
                                f"--models={args.models}", f"--epochs={args.epochs}", f"--out={ours_out}"],
                               args.threads), ours_out, env)
        recbole = run_json(pinned([args.recbole_python, "experiments/reproduce_recbole.py", "--bench",
                                   f"--epochs={args.epochs + 1}", "--seeds", "2020", f"--threads={args.threads}",
                                   f"--data={args.data}", f"--out={recbole_out}"], args.threads), recbole_out)
    sasrec = ours["runs"][0]
    recbole_epoch = float(sorted(recbole["seconds_per_epoch"][1:])[len(recbole["seconds_per_epoch"][1:]) // 2])
    recbole_eval = float(sorted(recbole["seconds_per_eval"][1:])[len(recbole["seconds_per_eval"][1:]) // 2])
    result = {
        "benchmark": "sequential_epoch_and_eval_seconds",
        "command": "python experiments/bench_sequential.py " + " ".join(sys.argv[1:]),
        "threads": args.threads, "pinned_with_taskset": shutil.which("taskset") is not None,
        "mmjax": ours, "recbole": recbole,
        "recbole_seconds_per_epoch": recbole_epoch, "recbole_seconds_per_eval": recbole_eval,
        "epoch_speedup_vs_recbole": round(recbole_epoch / sasrec["seconds_per_epoch"], 2),
        "eval_speedup_vs_recbole": round(recbole_eval / sasrec["seconds_per_eval"], 2),
        "relative_cost": {run["model"]: {"epoch": run["epoch_ratio_to_first"], "eval": run["eval_ratio_to_first"]}
                          for run in ours["runs"]},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
