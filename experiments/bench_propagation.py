"""Times LightGCN propagation on the Baby-sized graph, segment_sum vs sparse path, and prints JSON.

The real Baby train graph when --data exists (19,445 users, 7,050 items, 118,551 train pairs -> 26,495
nodes, 237,102 directed edges), else a random bipartite graph of the same size. Forward and
forward+backward (value_and_grad of the sum of squares of the output wrt x0), jitted, repeats of the
two paths interleaved in alternating order so machine noise hits both; medians and their ratios. When
PyTorch is installed (`pip install torch`), the same computation with `torch.sparse.mm` (the product
MMRec's graph models use) is timed in the same loop, for a PyTorch ratio measured in the same run.

  PYTHONPATH=. python experiments/bench_propagation.py [--repeats 50] [--out results/x.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from mmjax.data import load_mmrec_dir
from mmjax.graph import Graph, lightgcn_layers, sparse_adjacency, user_item_graph
from mmjax.train.train import git_commit

BABY = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "baby"
BABY_USERS, BABY_ITEMS, BABY_TRAIN_PAIRS = 19445, 7050, 118551


def baby_graph(data: Path, seed: int) -> tuple[jraph.GraphsTuple, int, int, str]:
    """The real Baby train graph, or a random bipartite graph of its size when `data` is absent.

    The last element names the source: the dataset checksum, or 'random'.
    """
    if data.is_dir():
        dataset = load_mmrec_dir(data)
        return user_item_graph(dataset.train, dataset.num_users, dataset.num_items), \
            dataset.num_users, dataset.num_items, dataset.checksum
    rng = np.random.default_rng(seed)
    keys = rng.choice(BABY_USERS * BABY_ITEMS, BABY_TRAIN_PAIRS, replace=False)
    pairs = np.stack([keys // BABY_ITEMS, keys % BABY_ITEMS], axis=1)
    return user_item_graph(pairs, BABY_USERS, BABY_ITEMS), BABY_USERS, BABY_ITEMS, "random"


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds of one call, waiting for the result."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return (time.perf_counter() - start) * 1e3


def torch_calls(graph: jraph.GraphsTuple, x0: np.ndarray, layers: int) -> dict[str, Callable[[], object]]:
    """torch.sparse.mm propagation (forward; forward+backward), or {} when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return {}
    num_nodes = x0.shape[0]
    index = torch.as_tensor(np.stack([np.asarray(graph.receivers), np.asarray(graph.senders)]).astype(np.int64))
    adjacency = torch.sparse_coo_tensor(index, torch.tensor(np.array(graph.edges)), (num_nodes, num_nodes),
                                        check_invariants=False).coalesce()
    x = torch.tensor(np.array(x0))

    def layer_mean(start: "torch.Tensor") -> "torch.Tensor":
        outputs, h = [start], start
        for _ in range(layers):
            h = torch.sparse.mm(adjacency, h)
            outputs.append(h)
        return torch.stack(outputs).mean(0)

    def forward():
        with torch.no_grad():
            return layer_mean(x)

    def forward_backward():
        leaf = x.clone().requires_grad_(True)
        loss = (layer_mean(leaf) ** 2).sum()
        loss.backward()
        return leaf.grad

    return {"forward": forward, "forward_backward": forward_backward, "version": torch.__version__,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=BABY, help="MMRec baby directory (random graph if absent)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    graph, num_users, num_items, checksum = baby_graph(args.data, args.seed)
    start = time.perf_counter()
    adj = sparse_adjacency(graph)
    build_ms = (time.perf_counter() - start) * 1e3
    graphs: dict[str, Graph] = {"segment_sum": graph, "sparse": adj}
    num_nodes = num_users + num_items
    x0 = jnp.asarray(np.random.default_rng(args.seed).normal(size=(num_nodes, args.dim)), jnp.float32)

    forward = jax.jit(lambda g, x: lightgcn_layers(g, x, args.layers))
    forward_backward = jax.jit(jax.value_and_grad(lambda g, x: jnp.sum(lightgcn_layers(g, x, args.layers) ** 2),
                                                  argnums=1))
    calls: dict[tuple[str, str], Callable[[], object]] = {}
    for path, g in graphs.items():
        calls[(path, "forward")] = functools.partial(forward, g, x0)
        calls[(path, "forward_backward")] = functools.partial(forward_backward, g, x0)
    torch_side = torch_calls(graph, np.asarray(x0), args.layers)
    for kind in ("forward", "forward_backward"):
        if kind in torch_side:
            calls[("torch_sparse_mm", kind)] = torch_side[kind]
    for call in calls.values():  # compile and warm up
        for _ in range(3):
            jax.block_until_ready(call())
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for repeat in range(args.repeats):
        for key in list(calls) if repeat % 2 == 0 else reversed(calls):
            times[key].append(timed(calls[key]))
    median = {key: float(np.median(values)) for key, values in times.items()}

    outputs = {path: calls[(path, "forward")]() for path in graphs}
    grads = {path: calls[(path, "forward_backward")]()[1] for path in graphs}
    result = {
        "benchmark": "propagation_lightgcn", "command": " ".join(["python", *sys.argv]), "commit": git_commit(),
        "source": "random" if checksum == "random" else "real", "dataset_checksum": checksum, "jax": jax.__version__,
        "device": str(jax.devices()[0]), "num_users": num_users, "num_items": num_items, "num_nodes": num_nodes,
        "directed_edges": int(graph.n_edge[0]), "symmetric": adj.transpose is None, "dim": args.dim,
        "layers": args.layers, "repeats": args.repeats, "seed": args.seed,
        "sparse_adjacency_build_ms": round(build_ms, 1),
        "ms_median": {f"{path}_{kind}": round(ms, 2) for (path, kind), ms in median.items()},
        "ms_min": {f"{path}_{kind}": round(min(values), 2) for (path, kind), values in times.items()},
        "ratio_segment_sum_over_sparse": {
            kind: round(median[("segment_sum", kind)] / median[("sparse", kind)], 2)
            for kind in ("forward", "forward_backward")},
        "torch": {"version": torch_side["version"], "threads": torch_side["threads"],
                  "ratio_torch_over_sparse": {
                      kind: round(median[("torch_sparse_mm", kind)] / median[("sparse", kind)], 2)
                      for kind in ("forward", "forward_backward")}} if torch_side else None,
        "max_abs_diff_output": float(jnp.max(jnp.abs(outputs["sparse"] - outputs["segment_sum"]))),
        "max_abs_diff_grad": float(jnp.max(jnp.abs(grads["sparse"] - grads["segment_sum"]))),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
