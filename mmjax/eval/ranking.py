"""Full-ranking top-K evaluation (Recall, NDCG, Precision, MAP), equal to MMRec's evaluator.

Every evaluated user is scored against all items; the user's train items are masked with -inf, the
top K = max(ks) items are taken with `lax.top_k` (ties go to the lower item id) and compared with the
user's ground truth. Users are processed in fixed-size blocks by one jitted function per block that returns
only metric sums, so one evaluation pass compiles once and moves a few floats back to the host.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import weakref
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.errors import ConfigError, DataError

METRICS = ("recall", "ndcg", "precision", "map")
DEFAULT_KS = (5, 10, 20, 50)

ScoreFn = Callable[[Any, jax.Array], jax.Array]
"""score_fn(score_state, users int32 [B]) -> float scores [B, num_items]."""

TopKFn = Callable[[Any, jax.Array, jax.Array, int], tuple[jax.Array, jax.Array]]
"""top_k_fn(score_state, users [B], exclude [B, L], k) -> (scores, ids) [B, k]: the same as top_k_masked of
score_fn's scores, for models that find the top k without scoring every item (eval/pruning.py)."""


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hash by identity, so device copies can be cached.
class EvalSet:
    """Host-side ground truth and masks for one split, built once."""

    users: np.ndarray  # int32 [n] evaluated users (sorted, unique)
    ground_truth: np.ndarray  # int32 [n, G] ground-truth items per user, padded with -1
    exclude: np.ndarray  # int32 [n, L] items to mask (the user's train items), padded with num_items; L >= 1
    num_items: int

    def __post_init__(self) -> None:
        n = self.users.shape[0]
        if self.users.ndim != 1 or self.ground_truth.ndim != 2 or self.exclude.ndim != 2:
            raise DataError("EvalSet: expected users [n], ground_truth [n, G] and exclude [n, L]")
        if self.ground_truth.shape[0] != n or self.exclude.shape[0] != n:
            raise DataError(f"EvalSet: {n} users but ground_truth has {self.ground_truth.shape[0]} rows and "
                            f"exclude {self.exclude.shape[0]}")

    @property
    def num_users(self) -> int:
        """Number of evaluated users."""
        return int(self.users.shape[0])


def padded_rows(starts: np.ndarray, lengths: np.ndarray, values: np.ndarray, width: int,
                 fill: int) -> np.ndarray:
    """Rows values[starts[r]:starts[r]+lengths[r]] left-aligned in an int32 [rows, width] array."""
    out = np.full((lengths.shape[0], width), fill, dtype=np.int32)
    row = np.repeat(np.arange(lengths.shape[0]), lengths)
    offset = np.arange(row.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[row, offset] = values[np.repeat(starts, lengths) + offset]
    return out


def build_eval_set(pairs: np.ndarray, exclude_indptr: np.ndarray, exclude_indices: np.ndarray,
                   num_items: int) -> EvalSet:
    """EvalSet of one split from its (user, item) pairs and the CSR (over all users) of items to mask.

    The evaluated users are the unique users of `pairs`; a user's ground truth is a set, so duplicate
    pairs count once.
    """
    pairs = np.asarray(pairs)
    indptr = np.asarray(exclude_indptr).astype(np.int64)
    indices = np.asarray(exclude_indices)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise DataError(f"eval pairs: expected an int array [m, 2] of (user, item), got {pairs.dtype} "
                        f"{pairs.shape}")
    if pairs.shape[0] == 0:
        raise DataError("eval pairs: the split has no (user, item) pairs to evaluate")
    if indptr.ndim != 1 or indptr.shape[0] < 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) \
            or indptr[-1] != indices.shape[0]:
        raise DataError(f"exclude CSR: expected a non-decreasing indptr from 0 to len(indices)="
                        f"{indices.shape[0]}, got length {indptr.shape[0]}")
    num_users = indptr.shape[0] - 1
    users, items = pairs[:, 0], pairs[:, 1]
    if users.min() < 0 or users.max() >= num_users:
        raise DataError(f"eval pairs: user ids must be in [0, {num_users}), got range "
                        f"[{users.min()}, {users.max()}]")
    if items.min() < 0 or items.max() >= num_items:
        raise DataError(f"eval pairs: item ids must be in [0, {num_items}), got range "
                        f"[{items.min()}, {items.max()}]")
    if indices.size and (indices.min() < 0 or indices.max() >= num_items):
        raise DataError(f"exclude CSR: item ids must be in [0, {num_items}), got range "
                        f"[{indices.min()}, {indices.max()}]")

    unique_pairs = np.unique(pairs.astype(np.int64), axis=0)  # sorted by user, then item
    eval_users, first, counts = np.unique(unique_pairs[:, 0], return_index=True, return_counts=True)
    ground_truth = padded_rows(first, counts, unique_pairs[:, 1], int(counts.max()), -1)
    lengths = indptr[eval_users + 1] - indptr[eval_users]
    exclude = padded_rows(indptr[eval_users], lengths, indices, max(1, int(lengths.max())), num_items)
    return EvalSet(users=eval_users.astype(np.int32), ground_truth=ground_truth, exclude=exclude,
                   num_items=int(num_items))


def metric_names(ks: Sequence[int]) -> tuple[str, ...]:
    """Output keys in the order `per_user_metrics` produces them: 'recall@5', ..., 'map@50'."""
    return tuple(f"{metric}@{k}" for metric in METRICS for k in ks)


class NonFiniteScoresError(FloatingPointError):
    """A model scored candidate items NaN or inf: its parameters have diverged (or were corrupted)."""


def non_finite_rows(top_scores: jax.Array, exclude: jax.Array, num_items: int) -> jax.Array:
    """Bool [B]: rows whose top-k scores hold NaN or +inf, or -inf where an unmasked item should stand.

    -inf marks masked items, which come last; a row has num_items minus its distinct masked items (padding
    is any id outside [0, num_items)) candidates, so a -inf at a rank below that count is a diverged score.
    """
    ordered = jnp.sort(exclude, axis=1)
    real = (ordered >= 0) & (ordered < num_items)
    distinct = real & jnp.concatenate([jnp.ones_like(real[:, :1]), ordered[:, 1:] != ordered[:, :-1]], axis=1)
    candidates = num_items - distinct.sum(axis=1)
    ranks = jnp.arange(top_scores.shape[1])
    bad = jnp.isnan(top_scores) | jnp.isposinf(top_scores) | \
        (jnp.isneginf(top_scores) & (ranks[None, :] < candidates[:, None]))
    return bad.any(axis=1)


def top_k_masked(scores: jax.Array, exclude: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """(scores, ids) [B, k] of the best items per row after masking `exclude` (out-of-range ids are padding).

    Masked items score -inf, so they come last; ties go to the lower item id.
    """
    rows = jnp.arange(scores.shape[0])[:, None]
    masked = scores.at[rows, exclude].set(-jnp.inf, mode="drop")
    return jax.lax.top_k(masked, k)


def top_k_unmasked(scores: jax.Array, exclude: jax.Array, k: int) -> jax.Array:
    """Ids [B, k] of the best-scoring items per row after masking `exclude` (out-of-range ids are padding)."""
    return top_k_masked(scores, exclude, k)[1]


def ranked_top_k(score_fn: ScoreFn, top_k_fn: TopKFn | None, score_state: Any, users: jax.Array,
                 exclude: jax.Array, k: int, num_items: int) -> tuple[jax.Array, jax.Array]:
    """(scores, ids) [B, k] of each user's best unmasked items: top_k_fn's when the model has one, else
    top_k_masked of score_fn's scores."""
    if top_k_fn is not None:
        return top_k_fn(score_state, users, exclude, k)
    scores = score_fn(score_state, users)
    if scores.shape != (users.shape[0], num_items):
        raise ConfigError(f"score_fn: expected scores of shape {(users.shape[0], num_items)}, got {scores.shape}")
    return top_k_masked(scores, exclude, k)


def hit_matrix(top_items: jax.Array, ground_truth: jax.Array, num_items: int) -> jax.Array:
    """Bool [B, K]: whether the item at each rank is in the row's ground truth (padded with -1)."""
    num_rows, k = top_items.shape
    if ground_truth.shape[1] * k <= num_items:  # a [B, K, G] comparison is smaller than a [B, items] mask
        return jnp.any(top_items[:, :, None] == ground_truth[:, None, :], axis=-1)
    rows = jnp.arange(num_rows)[:, None]
    targets = jnp.where(ground_truth < 0, num_items, ground_truth)  # -1 would wrap around; num_items drops
    relevant = jnp.zeros((num_rows, num_items), bool).at[rows, targets].set(True, mode="drop")
    return jnp.take_along_axis(relevant, top_items, axis=1)


def per_user_metrics(hits: jax.Array, num_positives: jax.Array, ks: Sequence[int]) -> dict[str, jax.Array]:
    """Per-user metrics [B] for each k from hits [B, K >= max(ks)] and ground-truth sizes P [B].

    MMRec's definitions: recall = hits@k / P, precision = hits@k / k, NDCG with binary gains and the ideal
    DCG truncated at min(P, k), MAP normalised by min(P, k). Rows with P = 0 (padding) give 0.
    """
    hits = hits.astype(jnp.float32)
    ranks = jnp.arange(1, hits.shape[1] + 1, dtype=jnp.float32)
    discount = 1.0 / jnp.log2(ranks + 1.0)
    hit_count = jnp.cumsum(hits, axis=1)
    dcg = jnp.cumsum(hits * discount, axis=1)
    ideal_dcg = jnp.cumsum(discount)
    average_precision = jnp.cumsum(hits * hit_count / ranks, axis=1)
    positives = jnp.maximum(num_positives, 1)
    out: dict[str, list[tuple[int, jax.Array]]] = {m: [] for m in METRICS}
    for k in ks:
        cutoff = jnp.minimum(positives, k)
        out["recall"].append((k, hit_count[:, k - 1] / positives))
        out["ndcg"].append((k, dcg[:, k - 1] / ideal_dcg[cutoff - 1]))
        out["precision"].append((k, hit_count[:, k - 1] / k))
        out["map"].append((k, average_precision[:, k - 1] / cutoff))
    valid = num_positives > 0
    return {f"{m}@{k}": jnp.where(valid, value, 0.0) for m in METRICS for k, value in out[m]}


class _DeviceBlocks(NamedTuple):
    """An EvalSet on device, padded to whole blocks: padding rows have user 0 and no ground truth."""

    users: jax.Array  # int32 [blocks * B]
    ground_truth: jax.Array  # int32 [blocks * B, G]
    num_positives: jax.Array  # int32 [blocks * B]
    exclude: jax.Array  # int32 [blocks * B, L]


_DEVICE_CACHE: weakref.WeakKeyDictionary[EvalSet, dict[int, _DeviceBlocks]] = weakref.WeakKeyDictionary()


def _device_blocks(eval_set: EvalSet, block_size: int) -> _DeviceBlocks:
    """Device-resident, block-padded copy of `eval_set`, uploaded once per (EvalSet, block size)."""
    per_set = _DEVICE_CACHE.setdefault(eval_set, {})
    if block_size not in per_set:
        n = eval_set.num_users
        pad = -n % block_size

        def padded(a: np.ndarray, fill: int) -> jax.Array:
            return jnp.asarray(np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=fill))

        per_set[block_size] = _DeviceBlocks(
            users=padded(eval_set.users, 0), ground_truth=padded(eval_set.ground_truth, -1),
            num_positives=padded((eval_set.ground_truth >= 0).sum(axis=1).astype(np.int32), 0),
            exclude=padded(eval_set.exclude, eval_set.num_items))
    return per_set[block_size]


@functools.partial(jax.jit, static_argnames=("score_fn", "top_k_fn", "ks", "block_size", "num_items"))
def _block_sums(score_state: Any, blocks: _DeviceBlocks, start: jax.Array, *, score_fn: ScoreFn,
                top_k_fn: TopKFn | None, ks: tuple[int, ...], block_size: int, num_items: int) -> jax.Array:
    """Sums over the users of one block of every metric, then the number of its users with non-finite
    scores (non_finite_rows): float32 [len(metric_names(ks)) + 1]."""
    def take(a: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice_in_dim(a, start, block_size)

    exclude, num_positives = take(blocks.exclude), take(blocks.num_positives)
    top_scores, top_items = ranked_top_k(score_fn, top_k_fn, score_state, take(blocks.users), exclude, max(ks),
                                         num_items)
    hits = hit_matrix(top_items, take(blocks.ground_truth), num_items)
    metrics = per_user_metrics(hits, num_positives, ks)
    non_finite = (non_finite_rows(top_scores, exclude, num_items) & (num_positives > 0)).sum()
    return jnp.stack([metrics[name].sum() for name in metric_names(ks)] + [non_finite.astype(jnp.float32)])


def _check_ks(ks: Sequence[int], num_items: int) -> tuple[int, ...]:
    """ks as a sorted tuple of unique positive ints no larger than num_items."""
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    if len(ks) == 0 or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ConfigError(f"eval.ks: expected a non-empty sequence of positive ints, got {ks!r}")
    checked = tuple(sorted({int(k) for k in ks}))
    if checked[-1] > num_items:
        raise ConfigError(f"eval.ks: max(ks)={checked[-1]} exceeds the number of items ({num_items})")
    return checked


def evaluate(score_fn: ScoreFn, score_state: Any, eval_set: EvalSet, ks: Sequence[int] = DEFAULT_KS,
             block_size: int = 4096, top_k_fn: TopKFn | None = None) -> dict[str, float]:
    """Mean Recall/NDCG/Precision/MAP@k over the users of `eval_set`, ranking all items.

    NonFiniteScoresError when any evaluated user's top items score NaN or inf (metrics of such scores
    would be meaningless, and may even look good).

    `score_fn` (and `top_k_fn`, which finds the top k in its place when given) is a static argument of the
    jitted block function: pass the same function object every epoch so it compiles once; `score_state`
    is a pytree of arrays (e.g. final user and item vectors).
    """
    ks = _check_ks(ks, eval_set.num_items)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ConfigError(f"eval.batch_size: expected a positive int, got {block_size!r}")
    block_size = min(int(block_size), eval_set.num_users)
    blocks = _device_blocks(eval_set, block_size)
    block_sums = functools.partial(_block_sums, score_state, blocks, score_fn=score_fn, top_k_fn=top_k_fn, ks=ks,
                                   block_size=block_size, num_items=eval_set.num_items)
    starts = [np.int32(start) for start in range(0, eval_set.num_users, block_size)]
    # XLA's CPU top_k runs on one core; blocks run from a thread per core overlap it with the other work.
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        sums = list(pool.map(lambda start: jax.block_until_ready(block_sums(start)), starts))
    totals = np.sum(np.asarray(jax.device_get(sums), dtype=np.float64), axis=0)  # summed in block order
    if totals[-1] > 0:
        raise NonFiniteScoresError(f"{int(totals[-1])} of {eval_set.num_users} evaluated users have NaN or inf "
                                   f"scores among their top {max(ks)} items")
    return {name: float(total / eval_set.num_users) for name, total in zip(metric_names(ks), totals[:-1])}
