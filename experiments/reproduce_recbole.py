"""Runs RecBole 1.2.1's SASRec on shared/data/scientific with the settings of shared/anchors.md, side by side with mmjax.

RecBole is not a dependency of mmjax: it lives in its own virtual environment outside the repository, and this
script never imports mmjax (that venv has no torch). Set it up once:

  python3 -m venv /work/recbole-venv
  /work/recbole-venv/bin/pip install torch==2.13.0        # the CPU wheel
  /work/recbole-venv/bin/pip install recbole==1.2.1

The script converts scientific.inter into a RecBole atomic file in --workdir (outside the repository; seq_pos
becomes the timestamp:float ordering field), checks that RecBole's leave-one-out split (eval_args split LS
valid_and_test, order TO, group_by user) gives exactly the x_label split, runs SASRec once per seed (valid
NDCG@10 every epoch, early stop after 10 epochs without improvement, test at the best-valid epoch) and writes
experiments/results/recbole_sasrec_scientific.json: per seed its best epoch, the valid metrics of every epoch,
seconds per training epoch and per evaluation pass, the test metrics at the best epoch, then their mean, the
command, the mmjax commit, the versions, the dataset checksum, the RecBole config and the runtime shims applied
to RecBole 1.2.1 for the newer numpy/torch installed here. RecBole's own log and checkpoints stay in --workdir.

  /work/recbole-venv/bin/python experiments/reproduce_recbole.py                 # seeds 2020 2021 2022, <= 100 epochs
  /work/recbole-venv/bin/python experiments/reproduce_recbole.py --seeds 2020 --epochs 1   # quick check; writes to
                                                                 # --workdir unless --out is given
  # timing only: a fixed number of epochs (no early stop, no test), seconds per training epoch and per full
  # evaluation pass over the valid users, written to --out (the form experiments/bench_sequential.py runs)
  /work/recbole-venv/bin/python experiments/reproduce_recbole.py --bench --epochs 3 --seeds 2020 --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "scientific")
RESULT = os.path.join(ROOT, "experiments", "results", "recbole_sasrec_scientific.json")
DATASET = "scientific"
KS = [5, 10, 20, 50]

# RecBole (SASRec), sequential, scientific in shared/anchors.md: RecBole 1.2.1, seed 2020. Its epochs are RecBole's
# log numbers, which count from 0; this script's best_epoch/epochs count from 1 (anchor epoch 14 = our epoch 15).
ANCHOR = {"seed": 2020, "best_epoch": 14, "epochs_run": 21, "seconds_per_epoch": 99.0, "seconds_per_eval": 6.5,
          "epoch_note": "best_epoch as in RecBole's log (0-based); the runs here count epochs from 1",
          "valid": {"recall@10": 0.1134, "recall@20": 0.1527, "recall@50": 0.2255, "ndcg@10": 0.0616,
                    "ndcg@20": 0.0716, "ndcg@50": 0.0859, "mrr@10": 0.0456},
          "test": {"recall@10": 0.0997, "recall@20": 0.1357, "recall@50": 0.2011, "ndcg@10": 0.0558,
                   "ndcg@20": 0.0649, "ndcg@50": 0.0778, "mrr@10": 0.0421}}


def recbole_config(seed: int, workdir: str, epochs: int, stopping_step: int) -> dict:
    """The RecBole config dict: anchors.md's SASRec settings, everything else RecBole 1.2.1's default."""
    return {
        # data: the converted atomic file, all interactions kept (no filtering, repeated pairs kept)
        "data_path": os.path.join(workdir, "dataset"),
        "checkpoint_dir": os.path.join(workdir, "saved", f"seed{seed}"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "rm_dup_inter": None, "filter_inter_by_user_or_item": True,
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": 50,
        # leave-one-out by time, full ranking over all items (history not masked: RecBole's sequential default)
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "MRR", "NDCG", "Hit"], "topk": KS, "valid_metric": "NDCG@10",
        "valid_metric_bigger": True, "eval_batch_size": 2048, "metric_decimal_place": 4,
        # SASRec
        "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256, "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02,
        "loss_type": "CE", "train_neg_sample_args": None,
        # training
        "learner": "adam", "learning_rate": 1e-3, "weight_decay": 0.0, "train_batch_size": 1024,
        "epochs": epochs, "stopping_step": stopping_step, "eval_step": 1, "clip_grad_norm": None, "shuffle": True,
        # environment
        "seed": seed, "reproducibility": True, "use_gpu": False, "worker": 0, "show_progress": False,
        "state": "INFO", "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
    }


def apply_shims() -> list[str]:
    """Runtime patches that let RecBole 1.2.1 run on the numpy/torch installed here; returns what was done.

    Applied before RecBole is imported; no installed file is edited.
    """
    import numpy as np
    import torch

    notes = []
    # Config.compatibility_settings() sets np.float = np.float_ etc.; numpy 2 removed np.float_, np.complex_
    # and np.unicode_, so that call itself fails. Give it the numpy-2 names it expects.
    for old, new in [("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)]:
        if not hasattr(np, old):
            setattr(np, old, new)
            notes.append(f"numpy {np.__version__}: np.{old} = np.{new.__name__} (removed in numpy 2; "
                         "RecBole's Config.compatibility_settings reads it to alias np.float/np.complex/np.unicode)")
    # torch >= 2.6 loads with weights_only=True by default; RecBole's checkpoint holds its Config object, so
    # trainer.evaluate(load_best_model=True) would refuse it. Its own checkpoints are trusted: default to False.
    if tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 6):
        original = torch.load

        def load(*args, **kwargs):
            kwargs.setdefault("weights_only", False)
            return original(*args, **kwargs)

        torch.load = load
        notes.append(f"torch {torch.__version__}: torch.load defaults to weights_only=False (RecBole's own "
                     "checkpoint of the best-valid epoch holds its Config object)")
    return notes


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def readme_sha256(data_dir: str, name: str) -> str | None:
    """The sha256 the data README lists for `name`."""
    try:
        with open(os.path.join(data_dir, "README.md")) as f:
            for line in f:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if cells and cells[0] == name and re.fullmatch(r"[0-9a-f]{64}", cells[-1]):
                    return cells[-1]
    except OSError:
        pass
    return None


def read_inter(data_dir: str) -> list[tuple[int, int, int, int]]:
    """Rows (user, item, seq_pos, x_label) of scientific.inter."""
    rows = []
    with open(os.path.join(data_dir, "scientific.inter")) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["userID", "itemID", "seq_pos", "x_label"]:
            sys.exit(f"error: unexpected header {header} in scientific.inter")
        for line in f:
            user, item, pos, label = (int(x) for x in line.rstrip("\n").split("\t"))
            rows.append((user, item, pos, label))
    return rows


def convert(rows: list[tuple[int, int, int, int]], workdir: str) -> str:
    """Writes <workdir>/dataset/scientific/scientific.inter (RecBole atomic file); seq_pos is the timestamp."""
    folder = os.path.join(workdir, "dataset", DATASET)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{DATASET}.inter")
    with open(path + ".tmp", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, item, pos, _ in rows:
            f.write(f"{user}\t{item}\t{pos}\n")
    os.replace(path + ".tmp", path)
    return path


def expected_samples(rows: list[tuple[int, int, int, int]], max_len: int) -> dict[int, collections.Counter]:
    """x_label -> multiset of (user, history (last max_len items), target) that the x_label split implies.

    Train samples are every x_label-0 position after the first (RecBole's prefix augmentation).
    """
    seqs: dict[int, dict[int, tuple[int, int]]] = collections.defaultdict(dict)
    for user, item, pos, label in rows:
        if pos in seqs[user]:
            sys.exit(f"error: user {user} has seq_pos {pos} twice")
        seqs[user][pos] = (item, label)
    out = {0: collections.Counter(), 1: collections.Counter(), 2: collections.Counter()}
    for user, by_pos in seqs.items():
        n = len(by_pos)
        if sorted(by_pos) != list(range(n)):
            sys.exit(f"error: user {user}: seq_pos is not 0..{n - 1}")
        items = [by_pos[p][0] for p in range(n)]
        labels = [by_pos[p][1] for p in range(n)]
        if labels[-2:] != [1, 2] or any(labels[:-2]):
            sys.exit(f"error: user {user}: x_label is not leave-one-out by seq_pos")
        for p in range(1, n):
            out[labels[p]][(user, tuple(items[max(0, p - max_len):p]), items[p])] += 1
    return out


def recbole_samples(dataset) -> collections.Counter:
    """Multiset of (user, history, target) in a RecBole sequential dataset, in the original IDs."""
    inter = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())
    targets = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())
    lists = inter[dataset.item_id_list_field].numpy()
    lengths = inter[dataset.item_list_length_field].numpy()
    hists = dataset.id2token(dataset.iid_field, lists)
    return collections.Counter((int(u), tuple(int(x) for x in h[:n]), int(t))
                               for u, h, n, t in zip(users, hists, lengths, targets))


def verify_split(rows, train_data, valid_data, test_data, max_len: int) -> dict:
    """RecBole's LS/TO split against the x_label split: the same (user, history, target) samples in each part."""
    expected = expected_samples(rows, max_len)
    record = {}
    for name, label, data in [("train", 0, train_data), ("valid", 1, valid_data), ("test", 2, test_data)]:
        got = recbole_samples(data._dataset)
        targets = collections.Counter((u, t) for u, _, t in got.elements())
        want_targets = collections.Counter((u, t) for u, _, t in expected[label].elements())
        record[name] = {"samples": sum(got.values()), "expected": sum(expected[label].values()),
                        "users": len({u for u, _ in targets}),
                        "targets_equal_x_label_rows": targets == want_targets,
                        "histories_equal": got == expected[label]}
    record["ok"] = all(r["histories_equal"] and r["targets_equal_x_label_rows"] for r in record.values())
    record["what"] = ("per part: RecBole's samples as (user, last <=50 history items, target) in original IDs, "
                      "compared as multisets with those the x_label column implies (valid/test target = the "
                      "x_label 1/2 row, history = every earlier item; train = every x_label-0 position after "
                      "the first, RecBole's prefix augmentation)")
    return record


def median_after_first(values: list[float]) -> float | None:
    if not values:
        return None
    return statistics.median(values[1:] if len(values) > 1 else values)


def run_seed(seed: int, args, rows, verify: bool) -> dict:
    """One RecBole SASRec run, step by step as recbole.quick_start.run_recbole, with each epoch timed."""
    import torch
    from logging import getLogger
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.transform import construct_transform
    from recbole.utils import get_flops, get_model, get_trainer, init_logger, init_seed

    bench = args.bench
    config_dict = recbole_config(seed, args.workdir, args.epochs, 10 ** 6 if bench else args.stopping_step)
    config = Config(model="SASRec", dataset=DATASET, config_dict=config_dict)
    torch.set_num_threads(args.threads)  # after Config, in case anything there touches it
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    counts = {"n_users": dataset.user_num - 1, "n_items": dataset.item_num - 1, "n_interactions": dataset.inter_num}
    train_data, valid_data, test_data = data_preparation(config, dataset)
    split = verify_split(rows, train_data, valid_data, test_data, config["MAX_ITEM_LIST_LENGTH"]) if verify else None
    if split is not None and not split["ok"]:
        print(json.dumps(split, indent=2), flush=True)
        sys.exit("error: RecBole's leave-one-out split differs from the x_label split")
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    transform = construct_transform(config)
    flops = get_flops(model, dataset, config["device"], logger, transform)  # run_recbole does this (RNG use)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    epochs: list[dict] = []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train(train_data, epoch_idx, *a, **kw):
        start = time.perf_counter()
        loss = train_epoch(train_data, epoch_idx, *a, **kw)
        epochs.append({"epoch": epoch_idx + 1, "train_seconds": time.perf_counter() - start,
                       "train_loss": float(sum(loss) if isinstance(loss, tuple) else loss)})
        return loss

    def timed_valid(valid_data, *a, **kw):
        start = time.perf_counter()
        score, result = valid_epoch(valid_data, *a, **kw)
        epochs[-1].update(eval_seconds=time.perf_counter() - start, valid={k: float(v) for k, v in result.items()})
        print(f"seed {seed} epoch {epochs[-1]['epoch']}: loss {epochs[-1]['train_loss']:.4f} "
              f"({epochs[-1]['train_seconds']:.1f} s) valid ndcg@10 {result['ndcg@10']:.4f} "
              f"recall@10 {result['recall@10']:.4f} ({epochs[-1]['eval_seconds']:.1f} s)", flush=True)
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    start = time.perf_counter()
    best_score, best_valid = trainer.fit(train_data, valid_data, saved=not bench, show_progress=False)
    fit_seconds = time.perf_counter() - start
    record = {"seed": seed, "threads": torch.get_num_threads(),
              "seconds_per_epoch": median_after_first([e["train_seconds"] for e in epochs]),
              "seconds_per_eval": median_after_first([e["eval_seconds"] for e in epochs]),
              "epochs_run": len(epochs), "fit_seconds": fit_seconds, "flops": float(flops),
              "train_samples": len(train_data._dataset), "train_batches": len(train_data),
              **counts, "split": split}
    if not bench:
        best_epoch = max(epochs, key=lambda e: e["valid"]["ndcg@10"])["epoch"]  # first epoch of the max (RecBole's)
        start = time.perf_counter()
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        record.update(best_epoch=best_epoch, best_valid_score=float(best_score),
                      valid={k: float(v) for k, v in best_valid.items()},
                      test={k: float(v) for k, v in test.items()}, test_eval_seconds=time.perf_counter() - start,
                      checkpoint=trainer.saved_model_file)
        if abs(record["valid"]["ndcg@10"] - epochs[best_epoch - 1]["valid"]["ndcg@10"]) > 1e-12:
            sys.exit("error: best epoch bookkeeping disagrees with RecBole's best valid result")
        logger.info(f"test result: {test}")
        print(f"seed {seed}: best epoch {best_epoch} of {len(epochs)}, test ndcg@10 {test['ndcg@10']:.4f} "
              f"recall@10 {test['recall@10']:.4f}", flush=True)
    record["epochs"] = epochs
    return record


def versions() -> dict:
    import numpy
    import pandas
    import recbole
    import torch
    return {"recbole": recbole.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "pandas": pandas.__version__, "python": sys.version.split()[0]}


def git_commit() -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def mean_over(runs: list[dict], key: str) -> dict[str, float]:
    return {m: sum(r[key][m] for r in runs) / len(runs) for m in runs[0][key]}


def std_over(runs: list[dict], key: str) -> dict[str, float]:
    return {m: statistics.stdev([r[key][m] for r in runs]) if len(runs) > 1 else 0.0 for m in runs[0][key]}


def write_json(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2)
    os.replace(path + ".tmp", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022],
                        help="2020 is RecBole's default and the anchor's; the mean of three is what we report")
    parser.add_argument("--epochs", type=int, default=100, help="most epochs (exactly this many with --bench)")
    parser.add_argument("--stopping-step", type=int, default=10, help="epochs without a better valid NDCG@10")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and OMP/MKL/OpenBLAS)")
    parser.add_argument("--data", default=DATA, help="folder holding scientific.inter")
    parser.add_argument("--workdir", default="/tmp/recbole_scientific",
                        help="outside the repository: atomic files, RecBole's log/, saved/ checkpoints")
    parser.add_argument("--bench", action="store_true",
                        help="timing only: --epochs epochs, no early stop, no test; writes seconds to --out")
    parser.add_argument("--out", help=f"result JSON (default {os.path.relpath(RESULT, ROOT)} for a full run, "
                                      "<workdir>/recbole_sasrec_scientific_epochs<N>.json with --epochs)")
    args = parser.parse_args()
    if args.bench and not args.out:
        sys.exit("error: --bench: expected --out PATH for the timings")
    if not os.path.isfile(os.path.join(args.data, "scientific.inter")):
        sys.exit(f"error: {args.data}/scientific.inter not found; the data live in shared/data beside the project")
    args.workdir = os.path.abspath(args.workdir)
    if os.path.commonpath([args.workdir, ROOT]) == ROOT:
        sys.exit(f"error: --workdir {args.workdir} is inside the repository; RecBole writes log/ and saved/ there")
    out = os.path.abspath(args.out) if args.out else (
        RESULT if args.epochs == 100 else os.path.join(args.workdir, f"recbole_sasrec_scientific_epochs{args.epochs}.json"))
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        os.environ[var] = str(args.threads)  # before numpy/torch are imported
    command = [sys.executable, *sys.argv]
    data_file = os.path.join(args.data, "scientific.inter")
    checksum = {"sha256": sha256(data_file), "readme_sha256": readme_sha256(args.data, "scientific.inter")}
    checksum["matches_readme"] = checksum["sha256"] == checksum["readme_sha256"]
    rows = read_inter(args.data)
    os.makedirs(args.workdir, exist_ok=True)
    atomic = convert(rows, args.workdir)
    os.chdir(args.workdir)  # RecBole writes ./log/ and ./log_tensorboard/ relative to the working directory

    import torch
    torch.set_num_threads(args.threads)
    shims = apply_shims()
    vers = versions()
    commit = git_commit()

    if args.bench:
        runs = [run_seed(seed, args, rows, verify=False) for seed in args.seeds]
        record = {"seconds_per_epoch": [e["train_seconds"] for r in runs for e in r["epochs"]],
                  "seconds_per_eval": [e["eval_seconds"] for r in runs for e in r["epochs"]],
                  "threads": runs[0]["threads"], "versions": vers, "seeds": args.seeds, "epochs": args.epochs,
                  "what": "RecBole 1.2.1 SASRec on scientific (anchors.md settings): seconds of each training "
                          "epoch and of each full evaluation pass over the 8,442 valid users, in run order",
                  "train_batches": runs[0]["train_batches"], "command": command, "mmjax": commit,
                  "shims": shims, "dataset_checksum": checksum}
        write_json(out, record)
        print(f"-> {out}", flush=True)
        return

    record = {"what": "RecBole 1.2.1 SASRec on shared/data/scientific with the anchors.md settings; test metrics at "
                      "the best valid NDCG@10 epoch (RecBole's saved best checkpoint)",
              "command": command, "mmjax": commit, "versions": vers, "threads": args.threads, "shims": shims,
              "dataset_checksum": checksum, "atomic_file": atomic, "workdir": args.workdir, "seeds": args.seeds,
              "config": recbole_config(args.seeds[0], args.workdir, args.epochs, args.stopping_step),
              "config_note": "seed and checkpoint_dir change per seed", "anchor": ANCHOR, "runs": []}
    for i, seed in enumerate(args.seeds):
        run = run_seed(seed, args, rows, verify=True)
        if i == 0:
            record["split_verification"] = run["split"]
        record["runs"].append(run)
        runs = record["runs"]
        record["mean"] = {"valid": mean_over(runs, "valid"), "test": mean_over(runs, "test"),
                          "std_test": std_over(runs, "test"),
                          "best_epoch": sum(r["best_epoch"] for r in runs) / len(runs),
                          "seconds_per_epoch": sum(r["seconds_per_epoch"] for r in runs) / len(runs),
                          "seconds_per_eval": sum(r["seconds_per_eval"] for r in runs) / len(runs)}
        record["complete"] = len(runs) == len(args.seeds)
        write_json(out, record)  # after every seed, so a stopped run keeps what it finished
    for run in record["runs"]:
        t = run["test"]
        print(f"seed {run['seed']}: best epoch {run['best_epoch']} test recall@10 {t['recall@10']:.4f} "
              f"ndcg@10 {t['ndcg@10']:.4f} mrr@10 {t['mrr@10']:.4f}; {run['seconds_per_epoch']:.1f} s/epoch", flush=True)
    t = record["mean"]["test"]
    print(f"mean: test recall@10 {t['recall@10']:.4f} ndcg@10 {t['ndcg@10']:.4f}", flush=True)
    print(f"-> {out}", flush=True)


if __name__ == "__main__":
    main()
