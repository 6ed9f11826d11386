"""Report on a finished run: python -m mmjax.report <workdir>

Rebuilds the run's model from the config stored in <workdir>/results.json, loads its best-valid
checkpoint and draws what the model exposes through GraphModel.inspect: for gated models, the
distribution of the per-item weight of each modality (<workdir>/gate_histogram.png). Summary
statistics and learned scalars go to <workdir>/report.json.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np

from mmjax.errors import MmjaxError


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run was trained with, from its results.json."""
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        raise MmjaxError(f"{path} not found: report needs a finished training run")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f)["config"])


def plot_histograms(arrays: dict[str, np.ndarray], title: str, path: str) -> None:
    """One histogram per named array, on shared axes, with its mean marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0.0, 1.0, 41)
    for name, values in arrays.items():
        line = ax.hist(values, bins=bins, alpha=0.55, label=f"{name} (mean {values.mean():.3f})")[2][0]
        ax.axvline(values.mean(), color=line.get_facecolor(), linestyle="--")
    ax.set(xlabel="weight of the modality in the item's fused content vector", ylabel="items", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(workdir: str) -> dict[str, Any]:
    """Writes report.json (and gate_histogram.png for gated models); returns the summary."""
    from mmjax.models import build_model
    from mmjax.train.train import load_best

    config = load_run_config(workdir)
    dataset, _, params, info = load_best(config, workdir)
    model = build_model(config.model, dataset)
    summary: dict[str, Any] = {"model": config.model.name, "dataset": dataset.name, "best_epoch": info["epoch"]}
    if model.inspect is not None:
        arrays = {name: np.asarray(value) for name, value in jax.jit(model.inspect)(params, model.consts).items()}
        summary.update({name: float(value) for name, value in arrays.items() if value.ndim == 0})
        gates = {name.split("/", 1)[1]: values for name, values in arrays.items() if name.startswith("gate/")}
        if gates:
            path = os.path.join(workdir, "gate_histogram.png")
            plot_histograms(gates, f"{config.model.name} on {dataset.name}: modality gate per item", path)
            summary["gate"] = {name: {"mean": float(v.mean()), "std": float(v.std()),
                                      "quantiles_10_50_90": [float(q) for q in np.quantile(v, [0.1, 0.5, 0.9])]}
                               for name, v in gates.items()}
            summary["gate_histogram"] = path
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m mmjax.report <workdir>", file=sys.stderr)
        return 2
    try:
        print(json.dumps(report(argv[1]), indent=2))
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
