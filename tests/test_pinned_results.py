"""Every graph model's results on a short synthetic run, pinned: a change to the shared trainer, the
evaluation or the checkpoints must leave them as they are.

The pinned figures (tests/pinned_results.json) were written by the code before such a change. When a
change is meant to alter results, regenerate them and say so in the commit:

    python tests/test_pinned_results.py --write
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINNED = os.path.join(ROOT, "tests", "pinned_results.json")
MODELS = ("bpr", "lightgcn", "vbpr", "freedom", "mgcn", "rlmultimodalrec", "magnet")
OVERRIDES = {"data.synthetic.num_users": 240, "data.synthetic.num_items": 120, "train.num_epochs": 3,
             "train.batch_size": 512, "eval.batch_size": 100, "train.patience": 100}
MODEL_OVERRIDES = {"magnet": {"model.knn_k": 5}, "freedom": {"model.knn_k": 5}, "mgcn": {"model.knn_k": 5}}
KEPT = ("best_epoch", "epochs_run", "valid", "test")


def run_model(model: str, workdir: str) -> dict:
    """The pinned part of a short run of configs/<model>.py: best epoch, metrics and per-epoch losses."""
    sys.path.insert(0, ROOT)
    from mmjax.config_files import load_config_file, with_overrides
    from mmjax.train.train import train_and_evaluate

    config = load_config_file(os.path.join(ROOT, "configs", f"{model}.py"))
    overrides = {**OVERRIDES, **MODEL_OVERRIDES.get(model, {})}
    results = train_and_evaluate(with_overrides(config, overrides), workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f]
    return {**{key: results[key] for key in KEPT}, "losses": losses}


@pytest.mark.parametrize("model", MODELS)
def test_results_equal_the_pinned_ones(model, tmp_path):
    with open(PINNED) as f:
        pinned = json.load(f)[model]
    got = run_model(model, str(tmp_path))
    assert got["best_epoch"] == pinned["best_epoch"] and got["epochs_run"] == pinned["epochs_run"]
    np.testing.assert_allclose(got["losses"], pinned["losses"], rtol=1e-6)
    for split in ("valid", "test"):
        assert sorted(got[split]) == sorted(pinned[split])
        np.testing.assert_allclose([got[split][k] for k in sorted(got[split])],
                                   [pinned[split][k] for k in sorted(pinned[split])], rtol=1e-6, atol=1e-7)


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write")
    with tempfile.TemporaryDirectory() as tmp:
        figures = {model: run_model(model, os.path.join(tmp, model)) for model in MODELS}
    with open(PINNED, "w") as f:
        json.dump(figures, f, indent=1, sort_keys=True)
    print(f"wrote {PINNED}")
