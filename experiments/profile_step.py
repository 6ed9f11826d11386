"""Where a training step's time goes: one model's whole-epoch program profiled op by op; JSON.

The model is built from its config file as `mmjax.main` builds it; one epoch compiles, then --epochs epochs
run under jax.profiler. Each op of the compiled epoch program (an XLA instruction, e.g. one fusion) is timed
from the trace and put in a part by the name scope its source carries (the scopes are set in the shared
code: `propagation` in graph/propagate.py, `loss_terms` in train/losses.py, `loss_and_gradient` and
`optimiser_update` in train/loop.py), and forward or backward by whether it is a transpose of the forward:

  propagation        graph products Â x (forward) and their transposes (backward)
  loss terms         BPR, InfoNCE, norm penalties
  gradient scatter   scatters outside the propagation: the backward of row gathers (embedding rows, batches)
  other model ops    the rest of the loss and gradient (dense layers, gathers, gates, ...)
  optimiser update   Adam's moments and the parameter update
  step bookkeeping   what remains inside the step (RNG, loop counters)

Host work is the epoch's wall time less the program's run: drawing the epoch's batches on the host and
copying them to the device. A floor: every op's operand and result bytes (as compiled, times its runs per
step) over the machine's memory bandwidth (measured here: the best of a numpy copy and an XLA elementwise
pass over 256 MiB), i.e. how fast the step would be if each op only streamed its inputs and outputs through
memory once. It is a rough bound both ways: a gather counts its whole table though it reads some rows, and
data that stays in cache moves faster than memory. The essential floor is what any step of the model must
stream at least: eight passes over the parameter bytes (parameters, Adam's two moments and the gradient, each
read and written) and each graph product's CSR arrays once.

  python experiments/profile_step.py --model lightgcn --data ../shared/data/baby --out results/x.json
  python experiments/profile_step.py --model mgcn --data ../shared/data/tiktok
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.bench_epoch import emit_benchmark, load_config  # noqa: E402
from mmjax.graph.propagate import PROPAGATION_SCOPE, SparseAdjacency, propagate  # noqa: E402
from mmjax.train.loop import GRADIENT_SCOPE, OPTIMISER_SCOPE, EpochTrainer  # noqa: E402
from mmjax.train.losses import LOSS_SCOPE  # noqa: E402
from mmjax.train.parallel import replicate, shard_batches  # noqa: E402
from mmjax.train.train import prepare  # noqa: E402

BYTES = {"f64": 8, "s64": 8, "u64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
         "s8": 1, "u8": 1, "pred": 1}
ARRAY = re.compile(r"\b(" + "|".join(BYTES) + r")\[([\d,]*)\]")
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$")
CONTAINERS = {"while", "call", "conditional"}  # their bodies' ops are timed one by one
PARTS = ("propagation", "loss terms", "gradient scatter", "other model ops", "optimiser update",
         "step bookkeeping")


def shape_bytes(text: str) -> int:
    """Bytes of every array in an HLO shape (a tuple counts its elements)."""
    return sum(BYTES[kind] * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
               for kind, dims in ARRAY.findall(text))


def split_instruction(rest: str) -> tuple[str, str, str, str]:
    """(result shape, opcode, operand list, attributes) of the text after an instruction's '='."""
    depth, index = 0, 0
    if rest.startswith("("):  # a tuple shape
        for index, char in enumerate(rest):
            depth += char == "("
            depth -= char == ")"
            if depth == 0:
                break
        shape, rest = rest[:index + 1], rest[index + 1:].lstrip()
    else:
        shape, _, rest = rest.partition(" ")
    opcode, _, rest = rest.partition("(")
    depth = 1
    for index, char in enumerate(rest):
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            break
    return shape, opcode.strip(), rest[:index], rest[index + 1:]


def parse_hlo(text: str) -> dict[str, dict]:
    """Every instruction of a compiled module: opcode, source op name, result and operand bytes."""
    result_bytes, parsed = {}, {}
    for line in text.splitlines():
        match = INSTRUCTION.match(line)
        if match is None:
            continue
        name, rest = match.groups()
        shape, opcode, operands, attributes = split_instruction(rest)
        result_bytes[name] = shape_bytes(shape)
        op_name = re.search(r'op_name="([^"]*)"', attributes)
        parsed[name] = {"opcode": opcode, "op_name": op_name.group(1) if op_name else "",
                        "operands": re.findall(r"%([\w.\-]+)", operands), "out": result_bytes[name],
                        "out_shape": shape, "scatter": "scatter" in name or opcode == "scatter"}
    shapes = {name: item["out_shape"] for name, item in parsed.items()}
    for item in parsed.values():
        item["operand_shapes"] = [shapes.get(name, "") for name in item["operands"]]
        item["bytes"] = item["out"] + sum(result_bytes.get(name, 0) for name in item.pop("operands"))
    return parsed


def sparse_products(hlo: dict[str, dict]) -> dict[str, tuple[int, str]]:
    """{op: (nonzeros, result shape)} of each CSR product of the program (jax's bcsr custom calls)."""
    products = {}
    for name, item in hlo.items():
        if item["opcode"] == "custom-call" and PROPAGATION_SCOPE in item["op_name"]:
            data = ARRAY.findall(item["operand_shapes"][0]) if item["operand_shapes"] else []
            products[name] = (int(data[0][1]) if data else -1, item["out_shape"])
    return products


def time_sparse_products(consts, products: dict[str, tuple[int, str]], repeats: int = 20) -> dict[str, float]:
    """{op: milliseconds} of each CSR product, timed alone (jitted, median of `repeats`) on the run's graph
    with its number of nonzeros: the profiler's trace times these custom calls' launch only."""
    graphs = {int(leaf.matrix.nse): leaf for leaf in jax.tree_util.tree_leaves(
        consts, is_leaf=lambda x: isinstance(x, SparseAdjacency)) if isinstance(leaf, SparseAdjacency)}
    timed: dict[tuple[int, str], float] = {}
    for nonzeros, shape in sorted(set(products.values())):
        graph, arrays = graphs.get(nonzeros), ARRAY.findall(shape)
        if graph is None or not arrays or len(arrays[0][1].split(",")) != 2:
            continue
        width = int(arrays[0][1].split(",")[1])
        product = jax.jit(lambda x, graph=graph: propagate(graph, x))
        x = jax.numpy.ones((graph.matrix.shape[1], width), jax.numpy.float32)
        jax.block_until_ready(product(x))
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(product(x))
            seconds.append(time.perf_counter() - start)
        timed[(nonzeros, shape)] = float(np.median(seconds)) * 1e3
    return {name: timed[key] for name, key in products.items() if key in timed}


def model_layer(op_name: str) -> str:
    """The flax layer an op of the model comes from ('query_hidden'), or the primitive outside layers:
    the scope after the model's own 'jvp(Model)/' in its source name."""
    match = re.search(r"jvp\(([\w.]+)\)+/([^/]+)", op_name)
    return match.group(2) if match else op_name.rsplit("/", 1)[-1]


def part_of(instruction: dict) -> str:
    """The PARTS entry of one instruction, from its source name scope and kind."""
    op_name = instruction["op_name"]
    if OPTIMISER_SCOPE in op_name:
        return "optimiser update"
    if PROPAGATION_SCOPE in op_name:
        return "propagation"
    if LOSS_SCOPE in op_name:
        return "loss terms"
    if GRADIENT_SCOPE in op_name:
        return "gradient scatter" if instruction["scatter"] else "other model ops"
    return "step bookkeeping"


def traced_ops(trace_dir: str) -> tuple[str, dict[str, float], dict[str, int]]:
    """(module, seconds per op name summed over the trace, runs per op name) of the traced module that ran
    longest (the epoch program)."""
    path = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)[0]
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    seconds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    runs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for event in events:
        args = event.get("args", {})
        if event.get("ph") == "X" and "hlo_op" in args:
            seconds[args["hlo_module"]][args["hlo_op"]] += event.get("dur", 0.0) * 1e-6
            runs[args["hlo_module"]][args["hlo_op"]] += 1
    module = max(seconds, key=lambda name: sum(seconds[name].values()))
    return module, dict(seconds[module]), dict(runs[module])


def memory_bandwidth() -> dict[str, float]:
    """GB/s (read + write) of a numpy copy and of an XLA elementwise pass over 256 MiB float32."""
    source = np.ones(64 * 2 ** 20, np.float32)
    target = np.empty_like(source)
    add_one = jax.jit(lambda x: x + 1.0)
    device = jax.device_put(source)
    jax.block_until_ready(add_one(device))
    copies, passes = [], []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(target, source)
        copies.append(time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(add_one(device))
        passes.append(time.perf_counter() - start)
    moved = 2 * source.nbytes / 1e9
    return {"numpy_copy_gb_s": round(moved / min(copies), 2), "xla_elementwise_gb_s": round(moved / min(passes), 2)}


def profile(spec: str, data_dir: str | None, epochs: int, top: int = 25) -> dict:
    """The breakdown of `spec`'s training epoch (see the module docstring)."""
    config = load_config(spec, data_dir)
    dataset, task = prepare(config)
    trainer = EpochTrainer.build(task, config.train)
    state = replicate(trainer.initial_state(int(config.train.seed)))
    state, _, _, _ = trainer.run_epoch(state, 0)  # compiles
    host_batches = [task.epoch_batches(epoch) for epoch in range(1, epochs + 1)]
    start = time.perf_counter()
    sharded = [shard_batches(b) for b in host_batches]
    shard_seconds = (time.perf_counter() - start) / epochs
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        task.epoch_batches(epoch)
    sampling_seconds = (time.perf_counter() - start) / epochs
    trace_dir = tempfile.mkdtemp(prefix="mmjax-profile-")
    try:
        walls = []
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        for batches in sharded:
            start = time.perf_counter()
            state, losses, _, _ = trainer.train_epoch(state, trainer.replicated_consts, batches)
            jax.block_until_ready(losses)
            walls.append(time.perf_counter() - start)
        jax.profiler.stop_trace()
        module, op_seconds, op_runs = traced_ops(trace_dir)
    finally:
        shutil.rmtree(trace_dir, ignore_errors=True)
    hlo = parse_hlo(trainer.train_epoch.lower(state, trainer.replicated_consts, sharded[0]).compile().as_text())
    bandwidth = memory_bandwidth()
    best_bandwidth = max(bandwidth.values()) * 1e9
    steps = trainer.steps_per_epoch * epochs
    parts = {part: {"forward_ms": 0.0, "backward_ms": 0.0, "ops": 0, "bytes_per_step": 0} for part in PARTS}
    unknown = 0.0
    for name, seconds in op_seconds.items():
        instruction = hlo.get(name)
        if instruction is None:
            unknown += seconds
            continue
        if instruction["opcode"] in CONTAINERS:
            continue
        part = parts[part_of(instruction)]
        direction = "backward_ms" if "transpose(" in instruction["op_name"] else "forward_ms"
        part[direction] += seconds * 1e3 / steps
        part["ops"] += 1
        part["bytes_per_step"] += instruction["bytes"] * op_runs[name] / steps
    # The trace times a CSR product's launch only: each is timed alone instead, once per run of it.
    products = sparse_products(hlo)
    sparse_ms = time_sparse_products(task.consts, products)
    for name, ms in sparse_ms.items():
        if name in op_seconds:
            direction = "backward_ms" if "transpose(" in hlo[name]["op_name"] else "forward_ms"
            parts["propagation"][direction] += ms * op_runs[name] / steps - op_seconds[name] * 1e3 / steps
            op_seconds[name] = ms * 1e-3 * op_runs[name]
    parts["propagation"]["csr_products_timed_alone"] = len(sparse_ms)
    timed_ms = sum(p["forward_ms"] + p["backward_ms"] for p in parts.values())
    leaves = [name for name in op_seconds if name in hlo and hlo[name]["opcode"] not in CONTAINERS]
    by_layer: collections.Counter = collections.Counter()  # the model's own ops, by the layer they come from
    for name in leaves:
        if part_of(hlo[name]) == "other model ops":
            by_layer[model_layer(hlo[name]["op_name"])] += op_seconds[name] * 1e3 / steps
    parts["other model ops"]["by_layer_ms_per_step"] = {layer: round(ms, 3) for layer, ms in by_layer.most_common()}
    top_ops = [{"op": name, "opcode": hlo[name]["opcode"], "source": hlo[name]["op_name"],
                "part": part_of(hlo[name]), "ms_per_step": round(op_seconds[name] * 1e3 / steps, 3),
                "runs_per_step": round(op_runs[name] / steps, 2)}
               for name in sorted(leaves, key=op_seconds.get, reverse=True)[:top]]
    for part in parts.values():
        part["ms_per_step"] = round(part["forward_ms"] + part["backward_ms"], 3)
        part["share"] = round(part["ms_per_step"] / timed_ms, 3) if timed_ms else 0.0
        part["floor_ms_per_step"] = round(part["bytes_per_step"] / best_bandwidth * 1e3, 3)
        part["bytes_per_step"] = int(part["bytes_per_step"])
        part["forward_ms"], part["backward_ms"] = round(part["forward_ms"], 3), round(part["backward_ms"], 3)
    wall_ms = float(np.median(walls)) * 1e3 / trainer.steps_per_epoch
    floor_ms = sum(p["floor_ms_per_step"] for p in parts.values())
    # What any step of this model must move at least: the parameters read and written, Adam's two moments
    # read and written, the gradient written and read (8 passes over the parameter bytes), and each graph
    # product's CSR arrays read once.
    param_bytes = sum(int(np.prod(leaf.shape[1:])) * leaf.dtype.itemsize
                      for leaf in jax.tree_util.tree_leaves(state.params))
    graph_bytes = sum(8 * nonzeros * op_runs.get(name, 0) / steps for name, (nonzeros, _) in products.items())
    essential_ms = (8 * param_bytes + graph_bytes) / best_bandwidth * 1e3
    return {"model": spec, "dataset": dataset.name, "dataset_checksum": dataset.checksum,
            "steps_per_epoch": trainer.steps_per_epoch, "batch_size": int(config.train.batch_size),
            "profiled_epochs": epochs, "module": module, "ops_timed": len(op_seconds),
            "epoch_seconds_wall": [round(w, 4) for w in walls],
            "step_ms_wall": round(wall_ms, 3),
            "step_ms_op_sum": round(timed_ms, 3),
            "untimed_op_ms_per_step": round(unknown * 1e3 / steps, 3),
            "host_ms_per_step": {"batch_sampling": round(sampling_seconds * 1e3 / trainer.steps_per_epoch, 3),
                                 "sharding_and_copy": round(shard_seconds * 1e3 / trainer.steps_per_epoch, 3)},
            "parts": parts, "top_ops": top_ops, "memory_bandwidth": bandwidth,
            "floor_ms_per_step": round(floor_ms, 3),
            "parameter_bytes": param_bytes,
            "essential_traffic_floor_ms_per_step": round(essential_ms, 3),
            "step_over_essential_floor": round(wall_ms / essential_ms, 2) if essential_ms else None,
            "step_over_floor": round(wall_ms / floor_ms, 2) if floor_ms else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lightgcn", help="configs/<name>[:propagation][@field=value...]")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "baby"),
                        help="MMRec directory; 'synthetic' for the built-in data")
    parser.add_argument("--epochs", type=int, default=3, help="profiled epochs after the compiling one")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        print("error: --epochs: expected >= 1", file=sys.stderr)
        return 2
    data_dir = None if args.data == "synthetic" else args.data
    emit_benchmark("training_step_profile", "python experiments/profile_step.py", args,
                   profile=profile(args.model, data_dir, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
