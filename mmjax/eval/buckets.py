"""Accuracy on item popularity buckets: does a model help the long tail?

Items are split by train degree into equal-count buckets (quintiles by default, least popular first);
a bucket's Recall@K is the share of the split's (user, item) pairs with the item in that bucket whose
item appears in the user's top K (train items masked, as in evaluation).
"""

from __future__ import annotations

import numpy as np

from mmjax.errors import DataError


def degree_buckets(train_counts: np.ndarray, num_buckets: int = 5) -> np.ndarray:
    """Bucket id per item, 0 = least popular: items ranked by train degree (ties by id), cut into
    `num_buckets` groups of (nearly) equal size."""
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or len(counts) < num_buckets or num_buckets < 1:
        raise DataError(f"degree buckets: need >= {num_buckets} items with train counts, got shape {counts.shape}")
    order = np.argsort(counts, kind="stable")
    buckets = np.empty(len(counts), dtype=np.int32)
    buckets[order] = np.arange(len(counts)) * num_buckets // len(counts)
    return buckets


def bucket_recall(top_items: np.ndarray, users: np.ndarray, pairs: np.ndarray, buckets: np.ndarray) -> dict:
    """Per bucket: pairs, hits and recall of `pairs` (user, item) against each user's `top_items` row.

    `users` [n] names the rows of `top_items` [n, K]; every pair's user must be among them.
    """
    row_of = {int(u): row for row, u in enumerate(users)}
    missing = [int(u) for u in np.unique(pairs[:, 0]) if int(u) not in row_of]
    if missing:
        raise DataError(f"bucket recall: {len(missing)} pair users have no top-K list (e.g. user {missing[0]})")
    rows = np.array([row_of[int(u)] for u in pairs[:, 0]])
    hit = np.any(top_items[rows] == pairs[:, 1:2], axis=1)
    pair_buckets = buckets[pairs[:, 1]]
    num_buckets = int(buckets.max()) + 1
    out = {"pairs": [], "hits": [], "recall": []}
    for b in range(num_buckets):
        in_bucket = pair_buckets == b
        total, hits = int(in_bucket.sum()), int(hit[in_bucket].sum())
        out["pairs"].append(total)
        out["hits"].append(hits)
        out["recall"].append(hits / total if total else float("nan"))
    return out
