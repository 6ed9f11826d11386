"""Top-K recommendation lists: each user's best-scoring items among those the user has not interacted with.

Users are scored through the same seam as evaluation: score_fn(state, query) with query = {'users': ...,
**inputs}, where `inputs` are the protocol's per-user arrays (e.g. a sequential model's history window).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import numpy as np

from mmjax.errors import ConfigError, DataError
from mmjax.eval.ranking import NonFiniteScoresError, ScoreFn, TopKFn, non_finite_rows, padded_rows, ranked_top_k


def check_users(users: np.ndarray, num_users: int) -> np.ndarray:
    """The user ids as int64 [n]; DataError for an empty list or an id outside [0, num_users)."""
    users = np.asarray(users, dtype=np.int64)
    if users.ndim != 1 or len(users) == 0:
        raise DataError("users: expected a non-empty list of user ids")
    if users.min() < 0 or users.max() >= num_users:
        bad = users[(users < 0) | (users >= num_users)][0]
        raise DataError(f"users: user id {bad} is unknown; ids must lie in [0, {num_users})")
    return users


@functools.partial(jax.jit, static_argnames=("score_fn", "top_k_fn", "k", "num_items"))
def _top_k_block(score_state: Any, query: dict[str, jax.Array], exclude: jax.Array, *, score_fn: ScoreFn,
                 top_k_fn: TopKFn | None, k: int, num_items: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    scores, ids = ranked_top_k(score_fn, top_k_fn, score_state, query, exclude, k, num_items)
    return scores, ids, non_finite_rows(scores, exclude, num_items)


def recommend_top_k(score_fn: ScoreFn, score_state: Any, users: np.ndarray, exclude_indptr: np.ndarray,
                    exclude_indices: np.ndarray, num_items: int, k: int,
                    block_size: int = 4096, top_k_fn: TopKFn | None = None,
                    inputs: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(items int32 [n, k], scores float32 [n, k]) for `users`, best first, ranking all items.

    `inputs` are per-user arrays [n, ...], row-aligned with `users`, that score_fn reads beside 'users'.

    A user's items in the exclude CSR are never recommended; where fewer than k items remain, the
    missing slots hold item -1 and score -inf. NonFiniteScoresError when a user's top items score NaN or inf.
    """
    users = check_users(users, len(exclude_indptr) - 1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_items:
        raise ConfigError(f"recommend.k: expected an int in [1, {num_items}] (the number of items), got {k!r}")
    indptr = np.asarray(exclude_indptr, dtype=np.int64)
    lengths = indptr[users + 1] - indptr[users]
    exclude = padded_rows(indptr[users], lengths, np.asarray(exclude_indices), max(1, int(lengths.max())),
                          num_items)
    block_size = min(int(block_size), len(users))
    pad = -len(users) % block_size
    padded_users = np.pad(users.astype(np.int32), (0, pad))
    padded_exclude = np.pad(exclude, [(0, pad), (0, 0)], constant_values=num_items)
    padded_inputs = {name: np.pad(np.asarray(a), [(0, pad)] + [(0, 0)] * (np.ndim(a) - 1))
                     for name, a in (inputs or {}).items()}
    bad = next((name for name, a in padded_inputs.items() if len(a) != len(padded_users)), None)
    if bad is not None:
        raise DataError(f"inputs[{bad!r}]: expected one row per user ({len(users)}), got {len(inputs[bad])}")

    def query(start: int) -> dict[str, np.ndarray]:
        rows = slice(start, start + block_size)
        return {"users": padded_users[rows], **{name: a[rows] for name, a in padded_inputs.items()}}

    results = [_top_k_block(score_state, query(start), padded_exclude[start:start + block_size], score_fn=score_fn,
                            top_k_fn=top_k_fn, k=int(k), num_items=num_items)
               for start in range(0, len(padded_users), block_size)]
    scores = np.concatenate([np.asarray(values) for values, _, _ in results])[:len(users)]
    items = np.concatenate([np.asarray(ids) for _, ids, _ in results])[:len(users)].astype(np.int32)
    non_finite = np.concatenate([np.asarray(bad) for _, _, bad in results])[:len(users)]
    if non_finite.any():
        raise NonFiniteScoresError(f"{int(non_finite.sum())} of {len(users)} users (first: user "
                                   f"{users[np.argmax(non_finite)]}) have NaN or inf scores among their top {k} "
                                   "items; the checkpoint's parameters have diverged")
    items[np.isneginf(scores)] = -1
    return items, scores
