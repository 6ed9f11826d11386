"""Full-ranking seconds of trained MAGNET runs against LightGCN, in one process; prints JSON.

bench_epoch.py times passes on a model a few epochs old, when MAGNET's expert term is still near 0 and
bounds are tight. This times the valid ranking pass of trained runs (best checkpoint, the schedule it
trained with), with bound pruning at each --candidates (0 = score every item), and LightGCN's pass on the
same data; it checks every setting gives the same metrics and reports the share of user blocks whose
bounds certified the top k (the others were scored in full).

  python -m experiments.bench_rank_magnet --runs runs/ablate/magnet_ablation_tiktok/MAGNET_seed999 \\
      --candidates 0,96,128 --out experiments/results/bench_rank_magnet_tiktok.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.bench_epoch import emit_benchmark
from mmjax.config_files import load_config_file
from mmjax.eval import evaluate
from mmjax.eval.pruning import candidate_top_k
from mmjax.models import magnet
from mmjax.models.inputs import selected_modalities
from mmjax.train.train import load_run_config
from mmjax.train.loop import check_monitor
from mmjax.train.train import best_score_state, load_best, prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_passes(task, state, ks, block_size: int, passes: int, top_k_fn=None) -> tuple[list[float], dict]:
    """Seconds of `passes` valid ranking passes after one to compile, and the pass's metrics."""
    def one() -> dict:
        return evaluate(task.score_fn, state, task.eval_sets["valid"], ks=ks, block_size=block_size,
                        top_k_fn=top_k_fn)

    metrics = one()
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        one()
        seconds.append(time.perf_counter() - start)
    return seconds, metrics


def certified_blocks(config, dataset, task, state, k: int, candidates: int, block_size: int) -> float:
    """Share of valid user blocks whose bounds certify the top k from `candidates` items per user."""
    module = magnet.magnet_module(config.model, dataset, selected_modalities(config.model, dataset))
    cfg = magnet.loss_config(config.model)

    @jax.jit
    def block(users, exclude):
        return jnp.all(candidate_top_k(magnet.score_bounds(state, users, cfg), exclude,
                                       magnet.ranked_candidates(module, state, users, cfg), k, candidates)[2])

    eval_set = task.eval_sets["valid"]
    whole = eval_set.num_users // block_size * block_size
    return float(np.mean([bool(block(jnp.asarray(eval_set.users[i:i + block_size]),
                                     jnp.asarray(eval_set.exclude[i:i + block_size])))
                          for i in range(0, whole, block_size)]))


def summary(seconds: list[float]) -> dict:
    return {"median_seconds": round(float(np.median(seconds)), 4), "seconds": [round(s, 4) for s in seconds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="comma-separated trained MAGNET workdirs")
    parser.add_argument("--candidates", default="0,96", help="comma-separated model.rank_candidates values")
    parser.add_argument("--passes", type=int, default=7, help="timed passes per setting")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    candidates = [int(c) for c in args.candidates.split(",")]
    results = []
    baseline = None
    for workdir in args.runs.split(","):
        config = load_run_config(workdir)
        ks, _ = check_monitor(config.eval)
        if baseline is None:  # LightGCN's pass on the same data: its cost does not depend on training
            light = load_config_file(os.path.join(ROOT, "configs", "lightgcn.py"))
            light.data.dir = config.data.dir
            _, light_task = prepare(light)
            light_state = jax.jit(light_task.score_state)(light_task.init_params(jax.random.PRNGKey(0)),
                                                          light_task.consts, None)
            light_seconds, _ = timed_passes(light_task, light_state, ks, int(light.eval.batch_size), args.passes)
            baseline = dict(summary(light_seconds), eval_block_users=int(light.eval.batch_size))
        run = {"workdir": workdir, "seed": int(config.train.seed), "settings": []}
        reference = None
        for count in candidates:
            config.model.rank_candidates = count
            dataset, task, params, info = load_best(config, workdir)
            state = best_score_state(task, params, info)
            block_size = int(config.eval.batch_size)
            seconds, metrics = timed_passes(task, state, ks, block_size, args.passes, task.top_k_fn)
            reference = metrics if reference is None else reference
            setting = dict(summary(seconds), rank_candidates=count,
                           ratio_to_lightgcn=round(float(np.median(seconds)) / baseline["median_seconds"], 3),
                           metrics_equal_to_first=metrics == reference,
                           valid_recall_at_20=metrics.get("recall@20"), valid_ndcg_at_20=metrics.get("ndcg@20"))
            if count:
                setting["certified_block_share"] = certified_blocks(config, dataset, task, state, max(ks), count,
                                                                    block_size)
            run["settings"].append(setting)
            print(json.dumps({"workdir": workdir, **setting}), flush=True)
        run.update(dataset=dataset.name, dataset_checksum=dataset.checksum, best_epoch=info["epoch"])
        results.append(run)
    emit_benchmark("magnet_full_ranking_seconds", "python -m experiments.bench_rank_magnet", args, lightgcn=baseline,
                   runs=results)

if __name__ == "__main__":
    main()
