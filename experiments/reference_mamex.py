"""Runs the released MAMEX code (GitHub Rec4Fun/MAMEX, CIKM'25) on a cold-start split and records its metrics.

The reference is launched with another Python (a venv holding torch, faiss-cpu, numba, scipy, tqdm,
tensorboardX) as a subprocess; this script itself needs only the standard library and numpy.

  python experiments/reference_mamex.py --code /tmp/mamex_ref/code --python /tmp/mamex_ref/venv/bin/python \
      --split /tmp/mamex_ref/smoke_split --seeds 2025,2026,2027 --threads 1 --out mamex_ref.json
  # short smoke run (evaluations happen after 1, 11, 21, ... epochs): --epochs 11
  # a full run is long on one core (~75 min per seed on tiktok): the JSON is rewritten after every seed and
  # --resume runs only the seeds OUT lacks, so the seeds can be spread over several launches

How the data path is pointed at --split, without touching the checkout: the reference reads its data from
the relative folder 'baby' (enviroment.py: DATA_PATH = 'baby') and writes logs under './exp_report', both
relative to the working directory. Each run therefore gets a fresh temporary working directory that holds
one symlink, baby -> SPLIT, and the checkout's main.py is run by absolute path from there (Python puts the
script's folder first on sys.path, so the checkout's modules import unchanged). No file of the checkout is
copied or edited; PYTHONDONTWRITEBYTECODE=1 keeps it free of __pycache__. '--dataset' stays at its default
'baby' (the 'tiktok' value takes a broken audio branch in the reference's loader).

Arguments passed to main.py: --seed S --use_gpu 0|1 --log 1 [--epoch N]; everything else is the code's
default (lr 1e-3, batch 2048, D 128, 1000 epochs, eval every 10, patience 200). --log 1 makes the
reference write exp_report/baby/default/log/*_val_log_default.log, the only place that holds the
validation metrics at every cutoff for the best epoch (stdout prints validation at K=10 only).

Parsed from stdout (colour codes stripped): 'TRAIN:epoch = E/N ... train_time = T' per epoch,
'epoch = E hr@10 = .., recall@10 = .., ndcg@10 = .., val_time = ..' per evaluation,
'epoch = E hr@K = .., recall@K = .., ndcg@K = .., test_time = ..' at each new best, and the closing
'best epoch E' block with 'hr@K = .., recall@K = .., ndcg@K = ..' (test at the best-valid evaluation).
Epochs are the reference's 0-based indices: best_epoch E means E + 1 epochs were trained. Metrics are
printed with 5 decimals. "hr" is the reference's hits / min(K, |T_u|), not a 0/1 hit rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REFERENCE = "Rec4Fun/MAMEX"
# Git blob ids of the code files at the commit this runner was written against (`git hash-object FILE`).
KNOWN_COMMIT = "928b614bbcdf6994ae82b71c4d8bd0f4c53ae2f5"
KNOWN_BLOBS = {"criterion.py": "16db25ed91fe780461f7becb2038a5fda91ba8cc",
               "enviroment.py": "58e224c0d0ad616c426eb6dd4a0d872326726a5a",
               "evaluation.py": "3730bc6a4045b557faddc2ce51d5e6245feaefd8",
               "loader.py": "46a298780381f88fb21a528c5eccd435a983e5d8",
               "main.py": "16aaa5c1b99b40363cc303a82ec99fa1a47f1e82",
               "model.py": "2e3bff1e961e666d0b992bec95a5f767f4c24d64",
               "session.py": "5ebec8401419733bd3f230a4cf50aa01fa933605",
               "tool.py": "a82f51a9ca70667ac6ac721b34bbcf7f6b0ac19e"}
SPLIT_FILES = ("train.txt", "val.txt", "test.txt", "cold_item_index.npy", "image_feat.npy", "text_feat.npy")
DATA_LINK = "baby"  # the relative data folder hard-coded in the reference's enviroment.py
MAX_K = 50  # the reference's largest cutoff (its --topk default [10, 20, 30, 40, 50] cannot be set from the CLI)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NUM = r"([-+0-9.eEnaif]+)"
TRAIN_RE = re.compile(rf"^TRAIN:epoch = (\d+)/(\d+) .*train_time = {NUM}")
EVAL_RE = re.compile(rf"^epoch = (\d+) hr@(\d+) = {NUM}, recall@\d+ = {NUM}, ndcg@\d+ = {NUM}, (val|test)_time = {NUM}")
BEST_RE = re.compile(r"best epoch (\d+)-")
FINAL_RE = re.compile(rf"^hr@(\d+) = {NUM}, recall@\d+ = {NUM}, ndcg@\d+ = {NUM}$")
COST_RE = re.compile(rf"training stage cost time: {NUM}")
VAL_EPOCH_RE = re.compile(r" : EPOCH\[(\d+)/\d+\]$")
VAL_LINE_RE = re.compile(rf" : hr@(\d+) = {NUM}, recall@\d+ = {NUM}, ndcg@\d+ = {NUM}, val_time")


class SplitError(Exception):
    """The split folder cannot be fed to the reference."""


def fail(message: str, code: int = 2) -> None:
    """Prints a one-line error and exits."""
    print(f"reference_mamex: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def git_blob_id(path: str) -> str:
    """Git's blob id of a file (what `git hash-object` prints)."""
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def code_commit(code: str, given: str | None) -> str:
    """The reference commit: --commit, else the checkout's git HEAD, else KNOWN_COMMIT if every file matches it."""
    if given:
        return given
    try:
        out = subprocess.run(["git", "-C", code, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", out.stdout.strip()):
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    differ = [name for name, blob in KNOWN_BLOBS.items()
              if not os.path.isfile(os.path.join(code, name)) or git_blob_id(os.path.join(code, name)) != blob]
    return KNOWN_COMMIT if not differ else f"unknown (differs from {KNOWN_COMMIT[:7]} in {', '.join(differ)})"


def split_checksum(split: str) -> str:
    """sha256 over the six files the reference reads, in SPLIT_FILES order (name, size, bytes of each)."""
    h = hashlib.sha256()
    for name in SPLIT_FILES:
        path = os.path.join(split, name)
        h.update(f"{name}\0{os.path.getsize(path)}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def read_lines(path: str) -> dict[int, list[int]]:
    """Reads one interaction file; rejects lines the reference's loader would crash on."""
    data: dict[int, list[int]] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if re.fullmatch(r"\d+ ", line):  # 'uid ' = a user without items: the reference skips it
                continue
            if not re.fullmatch(r"\d+( \d+)+", line):
                raise SplitError(f"{path}:{n}: expected 'user item item ...' (single spaces, no trailing space; "
                                 f"an empty user must be written 'uid ' with one trailing space)")
            ids = [int(t) for t in line.split(" ")]
            data.setdefault(ids[0], []).extend(ids[1:])
    return data


def check_split(split: str) -> dict:
    """Validates the split folder for the reference; returns its sizes."""
    if not os.path.isdir(split):
        raise SplitError(f"split folder not found: {split}")
    for name in SPLIT_FILES:
        if not os.path.isfile(os.path.join(split, name)):
            raise SplitError(f"missing split file: {os.path.join(split, name)}")
    train, val, test = (read_lines(os.path.join(split, f)) for f in SPLIT_FILES[:3])
    image = np.load(os.path.join(split, "image_feat.npy"), mmap_mode="r")
    text = np.load(os.path.join(split, "text_feat.npy"), mmap_mode="r")
    cold = np.load(os.path.join(split, "cold_item_index.npy"))
    if image.ndim != 2 or text.ndim != 2 or image.shape[0] != text.shape[0]:
        raise SplitError(f"image_feat {image.shape} and text_feat {text.shape} must be 2-D with equal rows")
    max_item = max((max(v) for d in (train, val, test) for v in d.values() if v), default=-1)
    if max_item >= image.shape[0]:
        raise SplitError(f"item id {max_item} has no feature row (features have {image.shape[0]} rows)")
    if cold.ndim != 1 or cold.size == 0 or cold.min() < 0 or cold.max() >= image.shape[0]:
        raise SplitError("cold_item_index.npy must be a non-empty 1-D vector of item ids with feature rows")
    # The reference asks faiss for MAX_K + (longest training list) neighbours among the cold items; with fewer
    # cold items faiss pads with -1 and the reference's id mapping fails (TypeError on None).
    longest = max((len(v) for v in train.values()), default=0)
    if MAX_K + longest > cold.size:
        raise SplitError(f"{cold.size} cold items < {MAX_K} + longest training list ({longest}): the reference's "
                         f"faiss search would return padding and crash")
    return {"n_users": 1 + max(max(d) for d in (train, val, test) if d), "n_items_in_files": max_item + 1,
            "feature_rows": int(image.shape[0]), "image_dim": int(image.shape[1]), "text_dim": int(text.shape[1]),
            "n_cold": int(cold.size), "train_interactions": sum(map(len, train.values())),
            "val_users": len(val), "test_users": len(test)}


def metrics(hr: str, recall: str, ndcg: str, k: str) -> dict[str, float]:
    """Names one cutoff's three printed figures."""
    return {f"recall@{k}": float(recall), f"ndcg@{k}": float(ndcg), f"hr@{k}": float(hr)}


def parse_stdout(text: str) -> dict:
    """Extracts the per-epoch, per-evaluation and final figures from the reference's stdout."""
    train_times: list[float] = []
    valid_trace: list[dict] = []
    test_at: dict[int, dict[str, float]] = {}
    best_epoch, final, cost, in_final = None, {}, None, False
    for raw in text.splitlines():
        line = ANSI.sub("", raw).strip()
        if m := TRAIN_RE.match(line):
            train_times.append(float(m.group(3)))
        elif m := EVAL_RE.match(line):
            epoch, k = int(m.group(1)), m.group(2)
            if m.group(6) == "val":
                valid_trace.append({"epoch": epoch, **metrics(m.group(3), m.group(4), m.group(5), k)})
            else:
                test_at.setdefault(epoch, {}).update(metrics(m.group(3), m.group(4), m.group(5), k))
        elif m := BEST_RE.search(line):
            best_epoch, in_final = int(m.group(1)), True
        elif in_final and (m := FINAL_RE.match(line)):
            final.update(metrics(m.group(2), m.group(3), m.group(4), m.group(1)))
        elif m := COST_RE.search(line):
            cost = float(m.group(1))
    return {"train_times": train_times, "valid_trace": valid_trace, "test_at": test_at, "best_epoch": best_epoch,
            "test": final, "training_seconds": cost}


def parse_val_log(workdir: str) -> tuple[int | None, dict[str, float]]:
    """The last 'EPOCH[e/N]' block of the reference's validation log: (epoch, metrics at every cutoff)."""
    log_dir = os.path.join(workdir, "exp_report", DATA_LINK, "default", "log")
    names = sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []
    names = [n for n in names if n.endswith("_val_log_default.log")]
    epoch, block = None, {}
    for name in names:
        with open(os.path.join(log_dir, name)) as f:
            for line in f:
                line = line.rstrip("\n")
                if m := VAL_EPOCH_RE.search(line):
                    epoch, block = int(m.group(1)), {}
                elif m := VAL_LINE_RE.search(line):
                    block.update(metrics(m.group(2), m.group(3), m.group(4), m.group(1)))
    return epoch, block


def reference_command(python: str, code: str, seed: int | str, epochs: int | None, use_gpu: bool) -> list[str]:
    """The command line of one reference run (run from a working directory holding the 'baby' link)."""
    cmd = [python, "-u", os.path.join(code, "main.py"), "--seed", str(seed), "--use_gpu", "1" if use_gpu else "0",
           "--log", "1"]
    return cmd + (["--epoch", str(epochs)] if epochs is not None else [])


def launch(args: argparse.Namespace, seed: int, workdir: str, log_dir: str) -> tuple[str, float]:
    """Runs main.py from workdir, teeing stdout to log_dir; returns (stdout, wall seconds)."""
    os.symlink(os.path.abspath(args.split), os.path.join(workdir, DATA_LINK))
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
               NUMBA_NUM_THREADS=threads, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = reference_command(args.python, os.path.abspath(args.code), seed, args.epochs, args.use_gpu)
    if args.taskset:
        cmd = ["taskset", "-c", args.taskset] + cmd
    stdout_path = os.path.join(log_dir, f"seed{seed}.stdout.txt")
    stderr_path = os.path.join(log_dir, f"seed{seed}.stderr.txt")
    t0 = time.time()
    lines = []
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            lines.append(line)
            clean = ANSI.sub("", line).strip()
            if "val_time" in clean or "best epoch" in clean:
                print(f"[seed {seed}] {clean}", file=sys.stderr, flush=True)
        rc = proc.wait()
    seconds = time.time() - t0
    ref_logs = os.path.join(workdir, "exp_report", DATA_LINK, "default", "log")
    for name in os.listdir(ref_logs) if os.path.isdir(ref_logs) else []:
        shutil.copy(os.path.join(ref_logs, name), os.path.join(log_dir, f"seed{seed}.{name.split('_', 1)[1]}"))
    if rc != 0:
        with open(stderr_path) as f:
            tail = f.read().strip().splitlines()[-1:] or ["(no stderr)"]
        fail(f"reference exited with {rc} for seed {seed} ({tail[0]}); logs in {log_dir}", code=1)
    return "".join(lines), seconds


def run_seed(args: argparse.Namespace, seed: int, log_dir: str) -> dict:
    """Runs the reference once in a fresh temporary working directory; returns the parsed record."""
    workdir = tempfile.mkdtemp(prefix=f"mamex_ref_seed{seed}_")
    try:
        stdout, seconds = launch(args, seed, workdir, log_dir)
        val_epoch, valid = parse_val_log(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stdout_path = os.path.join(log_dir, f"seed{seed}.stdout.txt")
    parsed = parse_stdout(stdout)
    best = parsed["best_epoch"]
    warnings = []
    if best is None or not parsed["test"]:
        fail(f"no 'best epoch' block in the reference's output for seed {seed}; see {stdout_path}", code=1)
    if parsed["test_at"].get(best) not in (None, parsed["test"]):
        warnings.append("closing test block differs from the test lines printed at the best epoch")
    if val_epoch != best:  # no gain ever recorded, or log missing: fall back to the K=10 stdout line
        warnings.append(f"validation log's last best is epoch {val_epoch}, not {best}; valid holds stdout's K=10 only")
        valid = next((dict((k, v) for k, v in e.items() if k != "epoch") for e in parsed["valid_trace"]
                      if e["epoch"] == best), {})
    times = parsed["train_times"]
    epoch_limit = args.epochs if args.epochs is not None else 1000
    return {"seed": seed, "best_epoch": best, "epochs_trained_at_best": best + 1, "epochs_run": len(times),
            "stopped_early": len(times) < epoch_limit, "evaluations": len(parsed["valid_trace"]),
            "test": parsed["test"], "valid": valid, "valid_ndcg@10": valid.get("ndcg@10"),
            "valid_trace": [[e["epoch"], e["ndcg@10"]] for e in parsed["valid_trace"]],
            "seconds": round(seconds, 2), "training_seconds": parsed["training_seconds"],
            "seconds_per_epoch": round(statistics.fmean(times), 3) if times else None,
            "seconds_per_epoch_first": times[0] if times else None,
            "stdout": stdout_path, "warnings": warnings}


def mean_over(runs: list[dict]) -> dict:
    """Mean (and sample std for test/valid figures) over seeds."""
    out: dict = {}
    for part in ("test", "valid"):
        keys = [k for k in runs[0][part] if all(k in r[part] for r in runs)]
        out[part] = {k: round(statistics.fmean(r[part][k] for r in runs), 6) for k in keys}
        if len(runs) > 1:
            out[f"{part}_std"] = {k: round(statistics.stdev(r[part][k] for r in runs), 6) for k in keys}
    for key in ("best_epoch", "epochs_run", "seconds", "seconds_per_epoch"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(statistics.fmean(values), 3) if values else None
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--code", help="exported Rec4Fun/MAMEX checkout (main.py, enviroment.py, ...)")
    p.add_argument("--python", default=sys.executable, help="python of the reference's venv (torch, faiss, numba)")
    p.add_argument("--split", help="split folder in the reference's format")
    p.add_argument("--seeds", default="2025,2026,2027", help="comma-separated seeds")
    p.add_argument("--threads", type=int, default=1, help="OMP/MKL/OpenBLAS/numba threads of the reference")
    p.add_argument("--taskset", default=None, help="CPU list to pin the reference to (taskset -c LIST)")
    p.add_argument("--epochs", type=int, default=None, help="epoch limit for a short run (reference default 1000)")
    p.add_argument("--use-gpu", action="store_true", help="let the reference use CUDA if its torch has it")
    p.add_argument("--commit", default=None, help="commit of the checkout (default: git HEAD or matched blobs)")
    p.add_argument("--out", default="reference_mamex.json", help="JSON record to write")
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds already in OUT (same commit, split, command) and run only the others")
    p.add_argument("--log-dir", default=None, help="where each run's stdout and logs go (default: OUT's stem + _logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Validates the inputs, runs every seed and writes the JSON record."""
    args = parse_args(argv)
    if not args.code:
        print("reference_mamex: skipped: the reference needs a MAMEX checkout (--code DIR, e.g. an export of "
              f"github.com/{REFERENCE})")
        return
    if not os.path.isfile(os.path.join(args.code, "main.py")):
        fail(f"no main.py in the MAMEX checkout: {args.code}")
    if not args.split:
        fail("--split DIR is required")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds must be comma-separated integers: {args.seeds}")
    if not seeds:
        fail("--seeds is empty")
    try:
        sizes = check_split(args.split)
    except SplitError as e:
        fail(str(e))
    if not (os.path.isfile(args.python) and os.access(args.python, os.X_OK)) and shutil.which(args.python) is None:
        fail(f"python not found: {args.python}")
    if os.sep in args.python:  # the reference runs from a temporary directory: a relative path would break
        args.python = os.path.abspath(args.python)
    log_dir = args.log_dir or os.path.splitext(os.path.abspath(args.out))[0] + "_logs"
    os.makedirs(log_dir, exist_ok=True)
    command = reference_command(args.python, os.path.abspath(args.code), "{seed}", args.epochs, args.use_gpu)
    record = {"reference": REFERENCE, "commit": code_commit(args.code, args.commit),
              "split": os.path.abspath(args.split), "split_checksum": split_checksum(args.split), "split_sizes": sizes,
              "command": (f"cd <tmp dir with {DATA_LINK} -> {os.path.abspath(args.split)}> && "
                          f"OMP_NUM_THREADS={args.threads} MKL_NUM_THREADS={args.threads} "
                          + (f"taskset -c {args.taskset} " if args.taskset else "") + " ".join(command)),
              "threads": args.threads, "epochs": args.epochs if args.epochs is not None else 1000, "runs": []}
    if args.resume and os.path.isfile(args.out):
        with open(args.out) as f:
            old = json.load(f)
        if any(old.get(k) != record[k] for k in ("commit", "split_checksum", "command", "epochs")):
            fail(f"--resume: {args.out} was written for another commit, split, command or epoch limit")
        record["runs"] = [r for r in old.get("runs", []) if r["seed"] in seeds]
    done = {r["seed"] for r in record["runs"]}
    for seed in [s for s in seeds if s not in done]:
        record["runs"].append(run_seed(args, seed, log_dir))
        record["mean"] = mean_over(record["runs"])
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:  # rewritten after every seed, so a long run leaves partial results
            json.dump(record, f, indent=1)
    if record["runs"]:
        record["mean"] = mean_over(record["runs"])
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
        print(json.dumps(record["mean"], indent=1))


if __name__ == "__main__":
    main()
