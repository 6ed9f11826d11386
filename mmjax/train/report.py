"""What a run leaves in its workdir: metrics.jsonl, results.json and curves.png (and .pdf); the plot helpers."""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, Sequence

import ml_collections

from mmjax.errors import ConfigError

logger = logging.getLogger(__name__)


class RunWriter:
    """Appends one JSON line per epoch and writes the final results and plot.

    A resumed run passes the records of the epochs it has already done; metrics.jsonl is rewritten to
    hold exactly those, dropping lines of epochs the resumed run will replay.
    """

    def __init__(self, workdir: str, records: Sequence[dict[str, Any]] = (), enabled: bool = True,
                 tensorboard: bool = False):
        self.workdir = workdir
        self.enabled = enabled  # False on the non-primary hosts of a multi-host job
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self.records: list[dict[str, Any]] = list(records)
        self.scalars = TensorBoardScalars(os.path.join(workdir, TENSORBOARD_DIR), self.records) \
            if enabled and tensorboard else None
        if enabled:
            os.makedirs(workdir, exist_ok=True)
            with open(self.metrics_path, "w") as f:
                f.writelines(json.dumps(record) + "\n" for record in self.records)

    def epoch(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.enabled:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self.scalars is not None:
            self.scalars.write(record)

    def close(self) -> None:
        if self.scalars is not None:
            self.scalars.close()

    def results(self, results: dict[str, Any], config: ml_collections.ConfigDict) -> None:
        if not self.enabled:
            return
        path = os.path.join(self.workdir, "results.json")
        with open(path, "w") as f:
            json.dump({**results, "config": config.to_dict()}, f, indent=2, default=str)
        plot_curves(self.records, str(results.get("monitor", "recall@20")),
                    os.path.join(self.workdir, "curves.png"), str(results.get("selected_on", "valid")),
                    title=f"{results.get('model', '?')} on {results.get('dataset', '?')}")
        logger.info("wrote %s, %s and curves.png%s", path, self.metrics_path,
                    f" (TensorBoard scalars in {os.path.join(self.workdir, TENSORBOARD_DIR)})" if self.scalars else "")
        self.close()


TENSORBOARD_DIR = "tensorboard"


class TensorBoardScalars:
    """train.tensorboard: each epoch record as TensorBoard scalars in <workdir>/tensorboard (step = epoch):
    loss, its parts (loss/<part>), seconds (time/train, time/eval) and every view's metrics (<view>/<metric>,
    TensorBoard spelling recall@20 as recall_20).

    Like metrics.jsonl, a resumed run rewrites the folder with the restored epochs first, so no epoch a
    resumed run replays appears twice."""

    def __init__(self, logdir: str, records: Sequence[dict[str, Any]]):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError("train.tensorboard: needs tensorboardX: pip install -e '.[tensorboard]'") from None
        shutil.rmtree(logdir, ignore_errors=True)
        self.writer = SummaryWriter(logdir=logdir)
        for record in records:
            self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        step = int(record["epoch"])
        scalars = {"loss": record["loss"], "time/train": record.get("train_seconds"),
                   "time/eval": record.get("eval_seconds"),
                   **{f"loss/{name}": value for name, value in record.get("parts", {}).items()}}
        for view, metrics in record.items():
            if isinstance(metrics, dict) and view not in ("parts", "schedule"):
                scalars.update({f"{view}/{name}": value for name, value in metrics.items()})
        for tag, value in scalars.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


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
