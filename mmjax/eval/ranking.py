"""Full-ranking top-K evaluation shared by every protocol: MMRec's Recall, NDCG, Precision, MAP, RecBole's
HR, MRR and the cold-start code's normalised HR, at any k.

An evaluation view (EvalSet) holds row-aligned queries: the user ids plus whatever a protocol's scorer
reads per query (a history window, say), each query's ground truth, the items to mask and, optionally, the
candidate items (all others are never ranked). Every query is scored against all items; masked and
non-candidate items get -inf, the top K = max(ks) items are taken with `lax.top_k` (ties go to the lower
item id) and compared with the ground truth. Queries are processed in fixed-size blocks by one jitted
function per block that returns only metric sums, so one pass compiles once and moves a few floats back.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import weakref
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.errors import ConfigError, DataError

DEFAULT_KS = (5, 10, 20, 50)

Query = Mapping[str, jax.Array]
"""One block of queries: 'users' int32 [B] and the view's per-query inputs (e.g. 'history' [B, L])."""

ScoreFn = Callable[[Any, Query], jax.Array]
"""score_fn(score_state, query) -> float scores [B, num_items]."""

TopKFn = Callable[[Any, Query, jax.Array, int], tuple[jax.Array, jax.Array]]
"""top_k_fn(score_state, query, exclude [B, L], k) -> (scores, ids) [B, k]: the same as top_k_masked of
score_fn's scores, for models that find the top k without scoring every item (eval/pruning.py)."""


class RankStats(NamedTuple):
    """Per-query running sums over ranks 1..K that every metric reads (float32 [B, K] unless noted)."""

    hits: jax.Array  # 1 where the item at that rank is in the ground truth
    hit_count: jax.Array  # hits at ranks <= r
    dcg: jax.Array  # binary-gain DCG at ranks <= r
    average_precision: jax.Array  # sum of precision@r at the hits, ranks <= r
    reciprocal_rank: jax.Array  # 1 / rank of the first hit at ranks <= r, 0 before it
    ideal_dcg: jax.Array  # [K] DCG of a perfect ranking with r relevant items
    positives: jax.Array  # [B] ground-truth size, at least 1


def _recall(s: RankStats, k: int) -> jax.Array:
    return s.hit_count[:, k - 1] / s.positives


def _ndcg(s: RankStats, k: int) -> jax.Array:
    return s.dcg[:, k - 1] / s.ideal_dcg[jnp.minimum(s.positives, k) - 1]


def _precision(s: RankStats, k: int) -> jax.Array:
    return s.hit_count[:, k - 1] / k


def _map(s: RankStats, k: int) -> jax.Array:
    return s.average_precision[:, k - 1] / jnp.minimum(s.positives, k)


def _hit_ratio(s: RankStats, k: int) -> jax.Array:
    return (s.hit_count[:, k - 1] > 0).astype(jnp.float32)


def _mrr(s: RankStats, k: int) -> jax.Array:
    return s.reciprocal_rank[:, k - 1]


def _normalised_hit_ratio(s: RankStats, k: int) -> jax.Array:
    return s.hit_count[:, k - 1] / jnp.minimum(s.positives, k)


METRIC_FUNCTIONS: dict[str, Callable[[RankStats, int], jax.Array]] = {
    "recall": _recall,  # hits@k / |ground truth|
    "ndcg": _ndcg,  # binary gains, ideal DCG truncated at min(|ground truth|, k)
    "precision": _precision,  # hits@k / k
    "map": _map,  # MMRec's MAP, normalised by min(|ground truth|, k)
    "hr": _hit_ratio,  # 1 if any ground-truth item is in the top k (RecBole's hit)
    "mrr": _mrr,  # 1 / rank of the first ground-truth item within the top k, else 0
    "nhr": _normalised_hit_ratio,  # hits@k / min(k, |ground truth|): the cold-start code's (MILK, MAMEX) "HR"
}
METRICS = ("recall", "ndcg", "precision", "map")  # the graph protocol's (MMRec's) default set


def parse_metric(name: str) -> tuple[str, int] | None:
    """('ndcg', 10) for 'ndcg@10'; None when `name` is not '<registered metric>@<positive int>'."""
    metric, _, k = str(name).partition("@")
    if metric not in METRIC_FUNCTIONS or not k.isascii() or not k.isdecimal() or int(k) < 1:
        return None
    return metric, int(k)


def check_metrics(metrics: Sequence[str], field: str = "eval.metrics") -> tuple[str, ...]:
    """The metric names as a tuple, in the given order; ConfigError for an unknown or repeated one."""
    if isinstance(metrics, str) or len(metrics) == 0:
        raise ConfigError(f"{field}: expected a non-empty sequence of metric names, got {metrics!r}")
    unknown = [m for m in metrics if m not in METRIC_FUNCTIONS]
    if unknown or len(set(metrics)) != len(metrics):
        raise ConfigError(f"{field}: expected distinct names among {sorted(METRIC_FUNCTIONS)}, got {tuple(metrics)}")
    return tuple(metrics)


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hash by identity, so device copies can be cached.
class EvalSet:
    """One evaluation view, host side, built once: row r is one query.

    `inputs` are the protocol's per-query arrays (row-aligned with `users`) that score_fn receives beside
    'users', e.g. 'history' [n, L] for a sequential model. `block_inputs` are arrays per block of
    `block_size` consecutive queries ([blocks, ...], e.g. a block's histories packed into rows), which
    score_fn receives without the block axis; a view with them is evaluated in blocks of its block_size.
    `candidates` restricts the ranking to those items (e.g. the cold items of the cold-start protocol); None
    ranks every item.
    """

    users: np.ndarray  # int32 [n] the user of each query
    ground_truth: np.ndarray  # int32 [n, G] ground-truth items per query, padded with -1
    exclude: np.ndarray  # int32 [n, L] items to mask (e.g. the user's train items), padded with num_items; L >= 1
    num_items: int
    inputs: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    candidates: np.ndarray | None = None  # int32 [c] item ids that may be ranked
    block_inputs: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    block_size: int | None = None  # the blocks block_inputs were built for

    def __post_init__(self) -> None:
        n = self.users.shape[0]
        if self.users.ndim != 1 or self.ground_truth.ndim != 2 or self.exclude.ndim != 2:
            raise DataError("EvalSet: expected users [n], ground_truth [n, G] and exclude [n, L]")
        if self.ground_truth.shape[0] != n or self.exclude.shape[0] != n:
            raise DataError(f"EvalSet: {n} users but ground_truth has {self.ground_truth.shape[0]} rows and "
                            f"exclude {self.exclude.shape[0]}")
        for name, array in self.inputs.items():
            if name == "users" or np.shape(array)[:1] != (n,):
                raise DataError(f"EvalSet inputs[{name!r}]: expected a per-query array with {n} rows (and not "
                                f"named 'users'), got shape {np.shape(array)}")
        if self.block_inputs:
            if self.block_size is None or self.block_size < 1:
                raise DataError("EvalSet block_inputs: expected the block_size they were built for")
            blocks = -(-n // self.block_size)
            for name, array in self.block_inputs.items():
                if np.shape(array)[:1] != (blocks,) or name in self.inputs or name == "users":
                    raise DataError(f"EvalSet block_inputs[{name!r}]: expected {blocks} blocks of {self.block_size} "
                                    f"queries (and a name of its own), got shape {np.shape(array)}")
        if self.candidates is not None:
            candidates = np.asarray(self.candidates)
            if candidates.ndim != 1 or len(candidates) == 0 or candidates.min() < 0 or \
                    candidates.max() >= self.num_items:
                raise DataError(f"EvalSet candidates: expected a non-empty list of item ids in [0, {self.num_items})")

    @property
    def num_users(self) -> int:
        """Number of queries (one per evaluated user in the graph protocol)."""
        return int(self.users.shape[0])

    @property
    def num_candidates(self) -> int:
        """How many items can be ranked before masking."""
        return self.num_items if self.candidates is None else int(len(np.unique(self.candidates)))


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


def metric_names(ks: Sequence[int], metrics: Sequence[str] = METRICS) -> tuple[str, ...]:
    """Output keys in the order `per_user_metrics` produces them: 'recall@5', ..., 'map@50'."""
    return tuple(f"{metric}@{k}" for metric in metrics for k in ks)


class NonFiniteScoresError(FloatingPointError):
    """A model scored candidate items NaN or inf: its parameters have diverged (or were corrupted)."""


def non_finite_rows(top_scores: jax.Array, exclude: jax.Array, num_items: int,
                    candidate_mask: jax.Array | None = None) -> jax.Array:
    """Bool [B]: rows whose top-k scores hold NaN or +inf, or -inf where an unmasked item should stand.

    -inf marks masked (and non-candidate) items, which come last; a row has its candidates (all items, or
    those of `candidate_mask` [num_items]) minus its distinct masked candidates (padding is any id outside
    [0, num_items)) to rank, so a -inf at a rank below that count is a diverged score.
    """
    ordered = jnp.sort(exclude, axis=1)
    real = (ordered >= 0) & (ordered < num_items)
    distinct = real & jnp.concatenate([jnp.ones_like(real[:, :1]), ordered[:, 1:] != ordered[:, :-1]], axis=1)
    if candidate_mask is None:
        candidates = num_items - distinct.sum(axis=1)
    else:
        masked = distinct & candidate_mask[jnp.clip(ordered, 0, num_items - 1)]
        candidates = candidate_mask.sum() - masked.sum(axis=1)
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


def ranked_top_k(score_fn: ScoreFn, top_k_fn: TopKFn | None, score_state: Any, query: Query,
                 exclude: jax.Array, k: int, num_items: int,
                 candidate_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(scores, ids) [B, k] of each query's best unmasked candidate items: top_k_fn's when the model has one,
    else top_k_masked of score_fn's scores (non-candidates, where `candidate_mask` [num_items] is given,
    score -inf)."""
    if top_k_fn is not None:
        if candidate_mask is not None:
            raise ConfigError("eval: a model that finds its top k without scoring every item (top_k_fn) cannot "
                              "rank a view restricted to candidate items")
        return top_k_fn(score_state, query, exclude, k)
    scores = score_fn(score_state, query)
    rows = query["users"].shape[0]
    if scores.shape != (rows, num_items):
        raise ConfigError(f"score_fn: expected scores of shape {(rows, num_items)}, got {scores.shape}")
    if candidate_mask is not None:
        scores = jnp.where(candidate_mask[None, :], scores, -jnp.inf)
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


def rank_stats(hits: jax.Array, num_positives: jax.Array) -> RankStats:
    """The running sums every metric reads, from hits [B, K] and ground-truth sizes P [B]."""
    hits = hits.astype(jnp.float32)
    ranks = jnp.arange(1, hits.shape[1] + 1, dtype=jnp.float32)
    discount = 1.0 / jnp.log2(ranks + 1.0)
    hit_count = jnp.cumsum(hits, axis=1)
    return RankStats(hits=hits, hit_count=hit_count, dcg=jnp.cumsum(hits * discount, axis=1),
                     average_precision=jnp.cumsum(hits * hit_count / ranks, axis=1),
                     reciprocal_rank=jax.lax.cummax(hits / ranks, axis=1), ideal_dcg=jnp.cumsum(discount),
                     positives=jnp.maximum(num_positives, 1))


def per_user_metrics(hits: jax.Array, num_positives: jax.Array, ks: Sequence[int],
                     metrics: Sequence[str] = METRICS) -> dict[str, jax.Array]:
    """Per-query values [B] of each metric at each k from hits [B, K >= max(ks)] and ground-truth sizes P [B].

    Definitions in METRIC_FUNCTIONS (MMRec's for recall, ndcg, precision, map; RecBole's hr and mrr). Rows
    with P = 0 (padding) give 0.
    """
    stats = rank_stats(hits, num_positives)
    valid = num_positives > 0
    return {f"{m}@{k}": jnp.where(valid, METRIC_FUNCTIONS[m](stats, k), 0.0) for m in metrics for k in ks}


class _DeviceBlocks(NamedTuple):
    """An EvalSet on device, padded to whole blocks: padding rows have user 0, zero inputs and no ground truth."""

    users: jax.Array  # int32 [blocks * B]
    ground_truth: jax.Array  # int32 [blocks * B, G]
    num_positives: jax.Array  # int32 [blocks * B]
    exclude: jax.Array  # int32 [blocks * B, L]
    inputs: dict[str, jax.Array]  # [blocks * B, ...] each
    block_inputs: dict[str, jax.Array]  # [blocks, ...] each
    candidate_mask: jax.Array | None  # bool [num_items], None = every item is a candidate


_DEVICE_CACHE: weakref.WeakKeyDictionary[EvalSet, dict[int, _DeviceBlocks]] = weakref.WeakKeyDictionary()


def bucketed_width(width: int) -> int:
    """The column count ground truth and exclusions are padded to, so that views of one task (valid, test)
    have equal block shapes and share one compiled block program: the next power of two up to 16, above it
    the next multiple of an eighth of the power of two at or above (573 and 603 -> 640): under 25 % padding."""
    width = max(int(width), 1)
    if width <= 16:
        return 1 << (width - 1).bit_length()
    step = 1 << ((width - 1).bit_length() - 3)
    return -(-width // step) * step


def _device_blocks(eval_set: EvalSet, block_size: int) -> _DeviceBlocks:
    """Device-resident, block-padded copy of `eval_set`, uploaded once per (EvalSet, block size); ground
    truth and exclusions padded to bucketed widths."""
    per_set = _DEVICE_CACHE.setdefault(eval_set, {})
    if block_size not in per_set:
        n = eval_set.num_users
        pad = -n % block_size

        def padded(a: np.ndarray, fill: int, width: int | None = None) -> jax.Array:
            columns = [] if width is None else [(0, width - a.shape[1])]
            return jnp.asarray(np.pad(a, [(0, pad)] + columns + [(0, 0)] * (a.ndim - 1 - len(columns)),
                                      constant_values=fill))

        ground_truth, exclude = eval_set.ground_truth, eval_set.exclude
        per_set[block_size] = _DeviceBlocks(
            users=padded(eval_set.users, 0),
            ground_truth=padded(ground_truth, -1, bucketed_width(ground_truth.shape[1])),
            num_positives=padded((ground_truth >= 0).sum(axis=1).astype(np.int32), 0),
            exclude=padded(exclude, eval_set.num_items, bucketed_width(exclude.shape[1])),
            inputs={name: padded(np.asarray(array), 0) for name, array in eval_set.inputs.items()},
            block_inputs={name: jnp.asarray(array) for name, array in eval_set.block_inputs.items()},
            candidate_mask=None if eval_set.candidates is None else
            jnp.asarray(np.isin(np.arange(eval_set.num_items), eval_set.candidates)))
    return per_set[block_size]


@functools.partial(jax.jit, static_argnames=("block_size",))
def _take_block(blocks: _DeviceBlocks, start: jax.Array, block_size: int) -> _DeviceBlocks:
    """The block of `block_size` queries from `start` (a multiple of block_size) of a view's device copy."""
    def take(a: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice_in_dim(a, start, block_size)

    return _DeviceBlocks(users=take(blocks.users), ground_truth=take(blocks.ground_truth),
                         num_positives=take(blocks.num_positives), exclude=take(blocks.exclude),
                         inputs={name: take(a) for name, a in blocks.inputs.items()},
                         block_inputs={name: jax.lax.dynamic_index_in_dim(a, start // block_size, keepdims=False)
                                       for name, a in blocks.block_inputs.items()},
                         candidate_mask=blocks.candidate_mask)


@functools.partial(jax.jit, static_argnames=("score_fn", "top_k_fn", "ks", "metrics", "num_items"))
def _block_sums(score_state: Any, block: _DeviceBlocks, *, score_fn: ScoreFn, top_k_fn: TopKFn | None,
                ks: tuple[int, ...], metrics: tuple[str, ...], num_items: int) -> jax.Array:
    """Sums over the queries of one block (_take_block) of every metric, then the number of its queries with
    non-finite scores (non_finite_rows): float32 [len(metric_names(ks, metrics)) + 1]. Compiled per block
    shape, not per view: valid and test of one task share it when their blocks' shapes agree."""
    query = {"users": block.users, **block.inputs, **block.block_inputs}
    top_scores, top_items = ranked_top_k(score_fn, top_k_fn, score_state, query, block.exclude, max(ks), num_items,
                                         block.candidate_mask)
    hits = hit_matrix(top_items, block.ground_truth, num_items)
    values = per_user_metrics(hits, block.num_positives, ks, metrics)
    non_finite = (non_finite_rows(top_scores, block.exclude, num_items, block.candidate_mask)
                  & (block.num_positives > 0)).sum()
    return jnp.stack([values[name].sum() for name in metric_names(ks, metrics)] + [non_finite.astype(jnp.float32)])


def _check_ks(ks: Sequence[int], num_items: int) -> tuple[int, ...]:
    """ks as a sorted tuple of unique positive ints no larger than num_items."""
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    if len(ks) == 0 or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ConfigError(f"eval.ks: expected a non-empty sequence of positive ints, got {ks!r}")
    checked = tuple(sorted({int(k) for k in ks}))
    if checked[-1] > num_items:
        raise ConfigError(f"eval.ks: max(ks)={checked[-1]} exceeds the number of items to rank ({num_items})")
    return checked


def evaluate(score_fn: ScoreFn, score_state: Any, eval_set: EvalSet, ks: Sequence[int] = DEFAULT_KS,
             block_size: int = 4096, top_k_fn: TopKFn | None = None,
             metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Mean of each metric@k over the queries of `eval_set`, ranking all (candidate) items.

    NonFiniteScoresError when any evaluated user's top items score NaN or inf (metrics of such scores
    would be meaningless, and may even look good).

    `score_fn` (and `top_k_fn`, which finds the top k in its place when given) is a static argument of the
    jitted block function: pass the same function object every epoch so it compiles once; `score_state`
    is a pytree of arrays (e.g. final user and item vectors).
    """
    ks = _check_ks(ks, eval_set.num_candidates)
    metrics = check_metrics(metrics)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ConfigError(f"eval.batch_size: expected a positive int, got {block_size!r}")
    block_size = eval_set.block_size if eval_set.block_inputs else min(int(block_size), eval_set.num_users)
    blocks = _device_blocks(eval_set, block_size)
    def block_sums(start: np.int32) -> jax.Array:
        return _block_sums(score_state, _take_block(blocks, start, block_size), score_fn=score_fn,
                           top_k_fn=top_k_fn, ks=ks, metrics=metrics, num_items=eval_set.num_items)

    starts = [np.int32(start) for start in range(0, eval_set.num_users, block_size)]
    # XLA's CPU top_k runs on one core; blocks run from a thread per core overlap it with the other work.
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        sums = list(pool.map(lambda start: jax.block_until_ready(block_sums(start)), starts))
    totals = np.sum(np.asarray(jax.device_get(sums), dtype=np.float64), axis=0)  # summed in block order
    if totals[-1] > 0:
        raise NonFiniteScoresError(f"{int(totals[-1])} of {eval_set.num_users} evaluated users have NaN or inf "
                                   f"scores among their top {max(ks)} items")
    return {name: float(total / eval_set.num_users) for name, total in zip(metric_names(ks, metrics), totals[:-1])}
