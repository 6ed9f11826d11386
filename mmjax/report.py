"""Report on a finished run: python -m mmjax.report <workdir> [--compare <workdir> ...]

Rebuilds the run's model from the config stored in <workdir>/results.json, loads its best-valid
checkpoint and draws, in <workdir>:
- gate_histogram.png: for gated models (GraphModel.inspect), the per-item weight of each modality (cold items
  only on the cold-start protocol);
- expert_usage.png: for models with per-modality experts (MAMEX), the mean routing weight of each expert
  per modality over the (cold) items;
- alignment.png: for EGRA, the strength λ and the entity-level alignment weights' quantiles per epoch, and
  every user's and item's weight at the best epoch;
- routing.png: for runs with a routing schedule, the per-pair routing entropy and expert balance per
  epoch, the ramp ρ, and the epoch the trigger fired;
- gate_heatmap.png: for mixture-of-experts models (GraphModel.route), the mean gate weight of each
  expert (role x source) over the test pairs;
- longtail.png: test Recall@20 per item train-degree quintile, beside that of every --compare run;
- for sequence models with experts (CAMMSR, SequenceModel.inspect): category_weights.png, the distribution
  over items of each stream's category-guided weight and its mean per category, and expert_usage.png, the
  mean gate weight of each expert per stream over the tokens of the test histories.
For models that can switch their expert term off (GraphModel.without_experts), report.json also holds
expert_effect: how much of each test user's top 20 the experts change (0 means they only rescale).
Summary statistics, learned scalars and the plotted numbers go to <workdir>/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from mmjax.errors import MmjaxError
from mmjax.train.report import integer_epochs, save_figure
from mmjax.train.train import load_run_config


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
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_expert_usage(experts: dict[str, np.ndarray], cold: np.ndarray | None, title: str,
                      workdir: str) -> dict[str, Any]:
    """expert_usage.png: per modality, the mean weight of each of its experts over the (cold) items, and the
    share of those items routed to each expert (a weight > 0); returned for report.json."""
    rows = {}
    for modality, weights in experts.items():
        rows[modality] = weights if cold is None else weights[cold]
    labels = [f"{m} ({'cold items' if cold is not None else 'items'})" for m in rows]
    matrix = np.stack([w.mean(axis=0) for w in rows.values()])
    path = os.path.join(workdir, "expert_usage.png")
    plot_heatmap(matrix, labels, [f"expert {e}" for e in range(matrix.shape[1])], title, path, xlabel="expert",
                 ylabel="modality", value_label="mean routing weight")
    return {"expert_usage": {m: {"mean_weight": [float(v) for v in w.mean(axis=0)],
                                 "share_routed": [float(v) for v in (w > 0).mean(axis=0)]} for m, w in rows.items()},
            "expert_usage_plot": path}


def read_records(workdir: str) -> list[dict[str, Any]]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def trigger_epoch(records: list[dict[str, Any]]) -> int | None:
    """The epoch at whose end the routing schedule fired (None if it never did)."""
    for record in records:
        fired = record["schedule"]["next"]["trigger_epoch"]
        if fired >= 0:
            return int(fired)
    return None


def plot_routing(records: list[dict[str, Any]], title: str, path: str) -> None:
    """Routing entropy and balance per epoch, ρ on a second axis, the trigger epoch marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(epochs, [r["parts"]["entropy"] for r in records], label="per-pair entropy / log E")
    ax.plot(epochs, [r["parts"]["balance"] for r in records], label="KL(expert load || uniform)")
    ax.set(xlabel="epoch", ylabel="routing statistic", title=title, ylim=(0, None))
    fired = trigger_epoch(records)
    if fired is not None:
        ax.axvline(fired, color="black", linestyle="--", label=f"trigger (end of epoch {fired})")
    ramp = ax.twinx()
    ramp.plot(epochs, [r["schedule"]["trained_with"]["rho"] for r in records], color="grey", linestyle=":",
              label="ramp ρ")
    ramp.set(ylabel="ρ", ylim=(-0.05, 1.05))
    lines = ax.get_legend_handles_labels()
    more = ramp.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left", bbox_to_anchor=(1.12, 1.0))
    integer_epochs(ax)
    fig.tight_layout()
    save_figure(fig, path)


def plot_alignment(records: list[dict[str, Any]], arrays: dict[str, np.ndarray], title: str,
                   path: str) -> dict[str, Any]:
    """EGRA's bi-level alignment: per epoch the strength λ and the batch weights' 10/50/90 % quantiles and
    range; beside, the weight of every user and item at the best epoch. Returns the plotted numbers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    part = {key: [r["parts"][key] for r in records]
            for key in ("strength", "weight_q10", "weight_q50", "weight_q90", "weight_min", "weight_max",
                        "alignment_degree")}
    fig, (curve, hist) = plt.subplots(1, 2, figsize=(11, 3.6))
    curve.fill_between(epochs, part["weight_min"], part["weight_max"], alpha=0.15, label="batch min-max")
    curve.fill_between(epochs, part["weight_q10"], part["weight_q90"], alpha=0.35, label="batch 10-90 %")
    curve.plot(epochs, part["weight_q50"], label="batch median")
    curve.set(xlabel="epoch", ylabel="entity alignment weight w", title="entity level, per epoch")
    integer_epochs(curve)
    strength = curve.twinx()
    strength.plot(epochs, part["strength"], color="black", linestyle=":", label="strength λ (right axis)")
    strength.set(ylabel="λ", ylim=(0, None))
    lines, more = curve.get_legend_handles_labels(), strength.get_legend_handles_labels()
    curve.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    summary: dict[str, Any] = {"per_epoch": {"epoch": epochs, **part}, "plot": path}
    for kind in ("user", "item"):
        weights = np.asarray(arrays[f"{kind}_alignment_weight"])
        hist.hist(weights, bins=40, alpha=0.55, label=f"{kind}s (mean {weights.mean():.2f})")
        summary[f"{kind}_weights_quantiles_10_50_90"] = [float(q) for q in np.quantile(weights, [0.1, 0.5, 0.9])]
        summary[f"{kind}_alignment_degree_mean"] = float(np.mean(arrays[f"{kind}_alignment_degree"]))
    hist.set(xlabel="alignment weight w if the batch held every user (item)", ylabel="count",
             title="every user and item, best epoch")
    hist.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return summary


def plot_heatmap(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str, path: str,
                 xlabel: str = "", ylabel: str = "", value_label: str = "mean gate weight") -> None:
    """Cells on a fixed [0, 1] colour scale (gates are weights), each labelled with its value."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.4 + 1.4 * len(cols), 1.6 + 0.6 * len(rows)))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center",
                    color="white" if matrix[i, j] < 0.5 else "black")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label=value_label)
    fig.tight_layout()
    save_figure(fig, path)


def mean_test_gates(model, params, consts, schedule, pairs: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Mean gate vector [E] over the (user, item) pairs, computed in chunks."""
    route = jax.jit(model.route)
    total = None
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        gates = np.asarray(route(params, consts, schedule, part[:, 0], part[:, 1]), np.float64).sum(axis=0)
        total = gates if total is None else total + gates
    return total / len(pairs)


def longtail_recall(workdir: str, k: int = 20) -> dict[str, Any]:
    """Test Recall@k per item train-degree quintile of the run in `workdir` (best-valid checkpoint)."""
    from mmjax.eval import recommend_top_k
    from mmjax.eval.buckets import bucket_recall, degree_buckets
    from mmjax.train.train import best_score_state, load_best

    config = load_run_config(workdir)
    dataset, task, params, info = load_best(config, workdir)
    pairs = dataset.eval_pairs("test")
    users = np.unique(pairs[:, 0])
    indptr, indices = dataset.train_csr()
    top, _ = recommend_top_k(task.score_fn, best_score_state(task, params, info), users, indptr, indices,
                             dataset.num_items, k, block_size=int(config.eval.batch_size), top_k_fn=task.top_k_fn)
    buckets = degree_buckets(dataset.item_train_counts())
    result = bucket_recall(top, users, pairs, buckets)
    result.update(model=config.model.name, workdir=workdir, dataset_checksum=dataset.checksum,
                  best_epoch=info["epoch"],
                  bucket_max_degree=[int(dataset.item_train_counts()[buckets == b].max()) for b in range(5)])
    return result


def expert_effect(task, without_experts, params, info: dict[str, Any], dataset, block_size: int,
                  k: int = 20) -> dict[str, Any]:
    """Share of each test user's top-k that differs once the expert term is switched off (mean over users).

    Near 0, the experts add nothing the behaviour term does not already rank the same way.
    """
    from mmjax.eval import recommend_top_k
    from mmjax.train.train import best_score_state

    users = np.unique(dataset.eval_pairs("test")[:, 0])
    indptr, indices = dataset.train_csr()
    tops = [recommend_top_k(task.score_fn, best_score_state(task, p, info), users, indptr, indices,
                            dataset.num_items, k, block_size=block_size, top_k_fn=task.top_k_fn)[0]
            for p in (params, without_experts(params))]
    changed = 1.0 - np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(*tops)])
    return {f"top{k}_changed_by_experts": float(changed), "users": int(len(users))}


def plot_longtail(results: list[dict[str, Any]], k: int, title: str, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(results)
    buckets = np.arange(len(results[0]["recall"]))
    for index, result in enumerate(results):
        bars = ax.bar(buckets + (index - (len(results) - 1) / 2) * width, result["recall"], width,
                      label=f"{result['model']} ({os.path.basename(os.path.normpath(result['workdir']))})")
        ax.bar_label(bars, labels=[f"{h}/{p}" for h, p in zip(result["hits"], result["pairs"])], fontsize=6,
                     rotation=90, padding=2)
    labels = [f"Q{b + 1}\n<= {d} train int." for b, d in enumerate(results[0]["bucket_max_degree"])]
    ax.set_xticks(buckets, labels, fontsize=8)
    ax.set(xlabel="test items by popularity quintile (train interactions of the item)",
           ylabel=f"test recall@{k} (bar labels: hits / test pairs)", title=title)
    ax.set_ylim(0, max(max(r["recall"]) for r in results) * 1.25)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def sequence_experts(model, params, view, dataset, workdir: str, name: str, sample: int = 2048) -> dict[str, Any]:
    """category_weights.png and expert_usage.png of a sequence model's inspect() over test histories."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = view.inputs["history"][:sample]
    out = model.inspect(params, model.consts, history)
    streams, summary = list(out["streams"]), {}
    alpha = np.asarray(out["alpha"])  # [M, B, L, K] (figure form) or [B, L, K] (subsets form)
    alpha = alpha if alpha.ndim == 4 else alpha[None]
    real = history != 0
    usage = np.stack([a[real].mean(axis=0) for a in alpha])  # [M or 1, K]
    rows = streams if len(usage) == len(streams) else ["fused item"]
    fig, ax = plt.subplots(figsize=(1.2 * usage.shape[1] + 2.5, 0.6 * len(rows) + 1.8))
    image = ax.imshow(usage, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(usage.shape[1]), [f"expert {k}" for k in range(usage.shape[1])])
    ax.set_yticks(range(len(rows)), rows)
    for (r, c), value in np.ndenumerate(usage):
        ax.text(c, r, f"{value:.2f}", ha="center", va="center", color="white" if value < usage.max() / 2 else "black")
    fig.colorbar(image, ax=ax, label="mean gate weight")
    ax.set_title(f"{name}: expert usage over test-history tokens")
    fig.tight_layout()
    summary["expert_usage"] = {row: [float(v) for v in values] for row, values in zip(rows, usage)}
    summary["expert_usage_plot"] = os.path.join(workdir, "expert_usage.png")
    save_figure(fig, summary["expert_usage_plot"])
    if out.get("weights") is None:
        return summary
    weights = np.asarray(out["weights"])  # [M, N]
    category = np.asarray(out["category"])
    counts = np.bincount(category)
    top = np.argsort(-counts)[:15]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    for stream, values in zip(streams, weights):
        left.hist(values, bins=np.linspace(0, 1, 41), alpha=0.55, label=f"{stream} (mean {values.mean():.3f})")
        right.plot(range(len(top)), [values[category == c].mean() for c in top], marker="o", label=stream)
    left.set(xlabel="category-guided weight w of the stream", ylabel="items", title="per item")
    names = dataset.category_names  # the data's own category names where it has them
    labels = [str(c) if names is None else str(names[c]) for c in top]
    right.set_xticks(range(len(top)), labels, rotation=30 if names is not None else 0, ha="right" if names is not None
                     else "center")
    right.set(xlabel=f"category{' id' if names is None else ''} (the 15 largest)", ylabel="mean w",
              title="per category")
    left.legend(fontsize=8)
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(f"{name}: category-guided stream weights")
    fig.tight_layout()
    summary["category_weights"] = {
        stream: {"mean": float(v.mean()), "std": float(v.std()),
                 "quantiles_10_50_90": [float(q) for q in np.quantile(v, [0.1, 0.5, 0.9])],
                 "per_category_spread": float(np.std([v[category == c].mean() for c in top])),
                 "per_category_mean": {label: float(v[category == c].mean()) for label, c in zip(labels, top)}}
        for stream, v in zip(streams, weights)}
    summary["category_weights_plot"] = os.path.join(workdir, "category_weights.png")
    save_figure(fig, summary["category_weights_plot"])
    return summary


def report(workdir: str, compare: Sequence[str] = ()) -> dict[str, Any]:
    """Writes report.json and the plots the run supports (see the module docstring); returns the summary."""
    from mmjax.models import build_model
    from mmjax.train.schedule import EpochSchedule
    from mmjax.train.train import load_best

    from mmjax.models.base import SequenceModel

    config = load_run_config(workdir)
    dataset, task, params, info = load_best(config, workdir)
    model = build_model(config.model, dataset)
    summary: dict[str, Any] = {"model": config.model.name, "dataset": dataset.name, "best_epoch": info["epoch"]}
    name = f"{config.model.name} on {dataset.name}"
    if isinstance(model, SequenceModel):
        if model.inspect is not None:
            summary.update(sequence_experts(model, params, task.eval_sets["test"], dataset, workdir, name))
        with open(os.path.join(workdir, "report.json"), "w") as f:
            json.dump(summary, f, indent=2)
        return summary
    if model.inspect is not None:
        arrays = {name: np.asarray(value) for name, value in jax.jit(model.inspect)(params, task.consts).items()}
        summary.update({name: float(value) for name, value in arrays.items() if value.ndim == 0})
        cold = task.eval_sets["test"].candidates if config.task == "coldstart" else None
        items = "cold item" if cold is not None else "item"
        gates = {name.split("/", 1)[1]: values if cold is None else values[cold]
                 for name, values in arrays.items() if name.startswith("gate/")}
        experts = {name.split("/", 1)[1]: values for name, values in arrays.items() if name.startswith("experts/")}
        if experts:
            summary.update(plot_expert_usage(experts, cold, f"{name}: mean expert weight per modality", workdir))
        if gates:
            path = os.path.join(workdir, "gate_histogram.png")
            plot_histograms(gates, f"{config.model.name} on {dataset.name}: modality gate per {items}", path)
            summary["gate"] = {name: {"mean": float(v.mean()), "std": float(v.std()),
                                      "quantiles_10_50_90": [float(q) for q in np.quantile(v, [0.1, 0.5, 0.9])]}
                               for name, v in gates.items()}
            summary["gate_histogram"] = path
    records = read_records(workdir)
    if records and "alignment_degree" in records[0]["parts"] and model.inspect is not None:
        path = os.path.join(workdir, "alignment.png")
        summary["alignment"] = plot_alignment(records, arrays, f"{name}: alignment weights", path)
    if records and "schedule" in records[0] and "entropy" in records[0]["parts"]:
        path = os.path.join(workdir, "routing.png")
        plot_routing(records, f"{name}: routing per epoch", path)
        summary["routing"] = {"trigger_epoch": trigger_epoch(records), "plot": path,
                              "entropy": [r["parts"]["entropy"] for r in records]}
    if model.route is not None:
        schedule = None
        if model.schedule is not None:
            schedule = EpochSchedule.from_host(info.get("schedule", {}), model.schedule.init())
        mean = mean_test_gates(model, params, model.consts, schedule, dataset.eval_pairs("test"))
        roles = sorted({label.split("/")[0] for label in model.expert_labels},
                       key=[label.split("/")[0] for label in model.expert_labels].index)
        sources = [label.split("/")[1] for label in model.expert_labels[:len(model.expert_labels) // len(roles)]]
        matrix = mean.reshape(len(roles), len(sources))
        path = os.path.join(workdir, "gate_heatmap.png")
        plot_heatmap(matrix, roles, sources, f"{name}: mean gate over test pairs (best epoch {info['epoch']})",
                     path, xlabel="expert source", ylabel="expert role")
        summary["mean_gate"] = {label: float(value) for label, value in zip(model.expert_labels, mean)}
        summary["gate_heatmap"] = path
    if model.without_experts is not None:
        summary["expert_effect"] = expert_effect(task, model.without_experts, params, info, dataset,
                                                 int(config.eval.batch_size))
    if compare:
        results = [longtail_recall(run) for run in (workdir, *compare)]
        path = os.path.join(workdir, "longtail.png")
        plot_longtail(results, 20, f"{dataset.name}: test recall@20 by item popularity quintile", path)
        summary["longtail"] = results
        summary["longtail_plot"] = path
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmjax.report", description=__doc__.splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("--compare", nargs="*", default=[],
                        help="workdirs of runs on the same dataset to draw beside it in longtail.png")
    args = parser.parse_args(argv[1:])
    try:
        print(json.dumps(report(args.workdir, args.compare), indent=2))
    except MmjaxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
