"""Times one full-ranking evaluation pass on a random Baby-sized problem and prints JSON.

19,445 users, 7,050 items, d = 64, ~118k train pairs masked, ~21k ground-truth pairs, ks (5, 10, 20, 50).

  PYTHONPATH=. python experiments/bench_eval.py [--block-size 4096] [--repeats 5]   # or after pip install -e .
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.eval import build_eval_set, evaluate
from mmjax.models.base import dot_scores


def random_split(rng: np.random.Generator, num_users: int, num_items: int, num_train: int, num_test: int):
    """Train CSR and disjoint test pairs; every user has at least one test item."""
    test_users = np.concatenate([np.arange(num_users), rng.integers(0, num_users, num_test - num_users)])
    train_users = rng.integers(0, num_users, num_train)
    users = np.concatenate([test_users, train_users])
    items = rng.integers(0, num_items, users.shape[0])
    pairs, first = np.unique(np.stack([users, items], 1), axis=0, return_index=True)
    is_test = first < num_test  # a pair drawn twice keeps its first role, so the splits stay disjoint
    train = pairs[~is_test]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(train[:, 0], minlength=num_users))])
    return pairs[is_test], indptr, train[:, 1].astype(np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    num_users, num_items, dim = 19445, 7050, 64
    rng = np.random.default_rng(args.seed)
    test_pairs, indptr, indices = random_split(rng, num_users, num_items, 118_000, 21_000)
    start = time.perf_counter()
    eval_set = build_eval_set(test_pairs, indptr, indices, num_items)
    build_seconds = time.perf_counter() - start
    state = (jnp.asarray(rng.normal(size=(num_users, dim)), jnp.float32),
             jnp.asarray(rng.normal(size=(num_items, dim)), jnp.float32))

    start = time.perf_counter()
    evaluate(dot_scores, state, eval_set, block_size=args.block_size)
    first_seconds = time.perf_counter() - start  # compile + upload + one pass
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        evaluate(dot_scores, state, eval_set, block_size=args.block_size)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({
        "benchmark": "eval_full_ranking", "device": str(jax.devices()[0]), "num_users": eval_set.num_users,
        "num_items": num_items, "dim": dim, "train_pairs": int(indices.shape[0]),
        "test_pairs": int(test_pairs.shape[0]), "block_size": args.block_size,
        "build_eval_set_seconds": round(build_seconds, 4), "first_call_seconds": round(first_seconds, 3),
        "seconds_per_eval_median": round(float(np.median(seconds)), 4),
        "seconds_per_eval_min": round(float(np.min(seconds)), 4), "repeats": args.repeats,
    }, indent=2))


if __name__ == "__main__":
    main()
