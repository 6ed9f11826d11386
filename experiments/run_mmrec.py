"""Runs a model of an MMRec checkout on one of our MMRec-format datasets, seed by seed, for side-by-side records.

Runs in a Python that has torch (MMRec's own environment, outside this repository), from any directory:

  /work/mmrec-venv/bin/python experiments/run_mmrec.py --mmrec /work/mmrec --model MGCN \
      --data ../shared/data/tiktok --seeds 999,2024,2025 --set cl_loss=0.01 \
      --out experiments/results/mmrec_mgcn_tiktok_seeds.json

MMRec reads its overall.yaml and model yaml; the dataset's fields come from here (our column names, the
image features in MMRec's vision slot and --text-slot, e.g. audio on tiktok, in its text slot), and each
--set overrides one field (a list such as a grid is cut to the value given). Training runs on CPU with
MMRec's own trainer and evaluator, from the checkout's src/ (where MMRec reads its yaml files and writes its
log/), never in this repository. Writes one record per seed: best valid and test-upon-valid metrics, best epoch, the
seconds of every training epoch and evaluation MMRec logged, and the command, MMRec commit, torch version,
threads and dataset checksum.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time

EPOCH_LINE = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s")
EVAL_LINE = re.compile(r"epoch (\d+) evaluating \[time: ([0-9.]+)s")


class EpochTimes(logging.Handler):
    """Collects MMRec's per-epoch training and evaluation seconds, and its best epoch, from its log lines."""

    def __init__(self):
        super().__init__()
        self.train: dict[int, float] = {}
        self.eval: dict[int, float] = {}
        self.best_epoch: int | None = None

    def clear(self) -> None:
        self.train, self.eval, self.best_epoch = {}, {}, None

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for pattern, store in ((EPOCH_LINE, self.train), (EVAL_LINE, self.eval)):
            match = pattern.search(text)
            if match:
                store[int(match.group(1))] = float(match.group(2))
        if "Best validation results updated" in text and self.eval:
            self.best_epoch = max(self.eval)  # the evaluation just logged


def files_checksum(directory: str) -> str:
    """SHA-256 over the dataset files' names and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            digest.update(name.encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def without_raw_image_modules() -> None:
    """MMRec imports torchvision and lmdb for its end-to-end raw-image mode only; where they are not installed,
    stand-in modules let the rest import, and any use of them fails loudly. torch_scatter's scatter_add (for
    graph degrees) is stood in for by torch's own index_add when that package is missing."""
    import importlib.util
    import types

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision / lmdb are not installed: MMRec's raw-image (end2end) mode cannot run here")

    if importlib.util.find_spec("torchvision") is None:
        transforms = types.ModuleType("torchvision.transforms")
        functional = types.ModuleType("torchvision.transforms.functional")
        functional.pad = functional.resize = unavailable
        transforms.functional = functional
        transforms.Compose = unavailable
        sys.modules.update({"torchvision": types.ModuleType("torchvision"), "torchvision.transforms": transforms,
                            "torchvision.transforms.functional": functional})
    if importlib.util.find_spec("torch_scatter") is None:  # MMRec's sparse Laplacian sums degrees with it
        import torch

        def scatter_add(src, index, dim=0, dim_size=None):
            if dim != 0:
                raise RuntimeError("the torch_scatter stand-in sums along dim 0 only")
            size = int(index.max()) + 1 if dim_size is None else dim_size
            return torch.zeros((size, *src.shape[1:]), dtype=src.dtype, device=src.device).index_add_(0, index, src)

        scatter = types.ModuleType("torch_scatter")
        scatter.scatter_add = scatter_add
        sys.modules["torch_scatter"] = scatter
    if importlib.util.find_spec("lmdb") is None:
        lmdb = types.ModuleType("lmdb")
        lmdb.open = unavailable
        sys.modules["lmdb"] = lmdb


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmrec", required=True, help="an MMRec checkout (the folder holding src/)")
    parser.add_argument("--model", required=True, help="MMRec's model name, e.g. MGCN, LightGCN, FREEDOM")
    parser.add_argument("--data", required=True, help="an MMRec-format dataset folder (<name>.inter, *_feat.npy)")
    parser.add_argument("--seeds", default="999")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--image-slot", default="image", help="the modality in MMRec's vision slot")
    parser.add_argument("--text-slot", default="text", help="the modality in MMRec's text slot (tiktok: audio)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    mmrec = os.path.abspath(args.mmrec)
    data = os.path.abspath(args.data)
    name = os.path.basename(data.rstrip("/"))
    out = os.path.abspath(args.out)
    if not os.path.isdir(os.path.join(mmrec, "src")) or not os.path.isfile(os.path.join(data, f"{name}.inter")):
        print(f"error: expected an MMRec checkout at {mmrec} and {name}.inter in {data}", file=sys.stderr)
        return 2
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import numpy

    for alias, builtin in (("float", float), ("int", int), ("bool", bool)):  # removed in numpy 1.24; MMRec
        if not hasattr(numpy, alias):                                         # still uses them (same types)
            setattr(numpy, alias, builtin)
    import scipy.sparse

    if not hasattr(scipy.sparse.dok_matrix, "_update") and hasattr(scipy.sparse.dok_matrix((1, 1)), "_dict"):
        # MMRec's LightGCN fills its adjacency with dok_matrix._update, gone from scipy >= 1.12; the same bulk
        # insert into the matrix's own key store
        scipy.sparse.dok_matrix._update = lambda self, entries: self._dict.update(entries)
    if not torch.cuda.is_available():  # some MMRec models move tensors with .cuda(): keep them where they are
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
    sys.path.insert(0, os.path.join(mmrec, "src"))
    os.chdir(os.path.join(mmrec, "src"))  # MMRec reads configs/ and writes log/ below the working directory
    without_raw_image_modules()
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.logger import init_logger
    from utils.utils import get_model, get_trainer, init_seed

    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    config_dict = {"use_gpu": False, "data_path": os.path.dirname(data) + "/", "USER_ID_FIELD": "userID",
                   "ITEM_ID_FIELD": "itemID", "inter_file_name": f"{name}.inter",
                   "vision_feature_file": f"{args.image_slot}_feat.npy",
                   "text_feature_file": f"{args.text_slot}_feat.npy", "seed": seeds, **overrides}
    config = Config(args.model, name, config_dict)
    init_logger(config)
    times = EpochTimes()
    logging.getLogger().addHandler(times)
    dataset = RecDataset(config)
    train_set, valid_set, test_set = dataset.split()
    for part in (dataset, train_set, valid_set, test_set):
        logging.info(str(part))  # as MMRec's quick_start: str() also sets the counts its loaders read
    train_data = TrainDataLoader(config, train_set, batch_size=config["train_batch_size"], shuffle=True)
    valid_data = EvalDataLoader(config, valid_set, additional_dataset=train_set, batch_size=config["eval_batch_size"])
    test_data = EvalDataLoader(config, test_set, additional_dataset=train_set, batch_size=config["eval_batch_size"])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=mmrec, capture_output=True, text=True).stdout.strip()
    record = {"what": f"MMRec's {args.model} on {data}, run by experiments/run_mmrec.py",
              "command": " ".join([os.path.basename(sys.executable), *sys.argv]), "mmrec": mmrec,
              "mmrec_commit": commit or "unknown (not a git checkout)", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "dataset_files_sha256": files_checksum(data),
              "overrides": overrides, "slots": {"vision": args.image_slot, "text": args.text_slot}, "runs": []}
    for seed in seeds:
        config["seed"] = seed
        for key, value in overrides.items():
            config[key] = value[0] if isinstance(value, list) else value
        init_seed(seed)
        times.clear()
        train_data.pretrain_setup()
        model = get_model(config["model"])(config, train_data).to(config["device"])
        trainer = get_trainer()(config, model, False)
        start = time.perf_counter()
        _, valid, test = trainer.fit(train_data, valid_data=valid_data, test_data=test_data, saved=False)
        epochs = sorted(times.train)
        record["runs"].append({
            "seed": seed, "best_valid": {k: float(v) for k, v in valid.items()},
            "test": {k: float(v) for k, v in test.items()}, "best_epoch": times.best_epoch,
            "epochs_run": len(epochs), "wall_seconds": time.perf_counter() - start,
            "train_seconds": [times.train[e] for e in epochs],
            "eval_seconds": [times.eval[e] for e in sorted(times.eval)]})
        logging.info("seed %d: valid %s test %s", seed, valid, test)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(record, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
