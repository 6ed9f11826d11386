"""What a run leaves in its workdir: metrics.jsonl, results.json and curves.png (and .pdf); the plot helpers."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Sequence

import ml_collections

logger = logging.getLogger(__name__)


class RunWriter:
    """Appends one JSON line per epoch and writes the final results and plot.

    A resumed run passes the records of the epochs it has already done; metrics.jsonl is rewritten to
    hold exactly those, dropping lines of epochs the resumed run will replay.
    """

    def __init__(self, workdir: str, records: Sequence[dict[str, Any]] = (), enabled: bool = True):
        self.workdir = workdir
        self.enabled = enabled  # False on the non-primary hosts of a multi-host job
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self.records: list[dict[str, Any]] = list(records)
        if enabled:
            os.makedirs(workdir, exist_ok=True)
            with open(self.metrics_path, "w") as f:
                f.writelines(json.dumps(record) + "\n" for record in self.records)

    def epoch(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.enabled:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def results(self, results: dict[str, Any], config: ml_collections.ConfigDict) -> None:
        if not self.enabled:
            return
        path = os.path.join(self.workdir, "results.json")
        with open(path, "w") as f:
            json.dump({**results, "config": config.to_dict()}, f, indent=2, default=str)
        plot_curves(self.records, str(results.get("monitor", "recall@20")),
                    os.path.join(self.workdir, "curves.png"), str(results.get("selected_on", "valid")),
                    title=f"{results.get('model', '?')} on {results.get('dataset', '?')}")
        logger.info("wrote %s, %s and curves.png", path, self.metrics_path)


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Writes a figure as PNG at `path` and as PDF beside it (for papers), then closes it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi)
    fig.savefig(os.path.splitext(path)[0] + ".pdf")
    plt.close(fig)


def integer_epochs(ax) -> None:
    """Epoch axes tick at whole epochs only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(records: list[dict[str, Any]], monitor: str, path: str, view: str = "valid",
                title: str = "") -> None:
    """Training loss per epoch and the monitored metric of the selection view at each evaluated epoch, best
    epoch marked; `title` names the run (model on dataset)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [r["loss"] for r in records])
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    evaluated = [r for r in records if view in r]
    ax_metric.plot([r["epoch"] for r in evaluated], [r[view].get(monitor) for r in evaluated],
                   marker="." if len(evaluated) < len(records) else None)
    best = [r["epoch"] for r in records if r.get("best")]
    if best:
        ax_metric.axvline(best[-1], color="grey", linestyle="--")
    ax_metric.set(xlabel="epoch", ylabel=f"{view} {monitor}",
                  title=f"{view} {monitor}" + (f" (best epoch {best[-1]}, dashed)" if best else ""))
    for ax in (ax_loss, ax_metric):
        integer_epochs(ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
