"""Item popularity buckets and per-bucket recall against hand-made cases."""

import numpy as np
import pytest

from mmjax.errors import DataError
from mmjax.eval.buckets import bucket_recall, degree_buckets


def test_degree_buckets_are_equal_count_quintiles_least_popular_first():
    counts = np.array([9, 0, 3, 3, 7, 1, 0, 2, 5, 4])
    buckets = degree_buckets(counts)
    assert np.bincount(buckets).tolist() == [2, 2, 2, 2, 2]
    assert buckets[1] == buckets[6] == 0  # the two cold items
    assert buckets[0] == buckets[4] == 4  # the two most popular
    for low, high in zip(*np.nonzero(counts[:, None] < counts[None, :])):
        assert buckets[low] <= buckets[high]
    with pytest.raises(DataError, match="degree buckets"):
        degree_buckets(np.array([1, 2]))


def test_bucket_recall_counts_hits_per_bucket():
    buckets = np.array([0, 0, 1, 1])
    top = np.array([[0, 2], [3, 1]])  # users 10 and 11
    pairs = np.array([[10, 0], [10, 1], [10, 3], [11, 1], [11, 2]])
    result = bucket_recall(top, np.array([10, 11]), pairs, buckets)
    assert result["pairs"] == [3, 2]
    assert result["hits"] == [2, 0]
    assert result["recall"] == [2 / 3, 0.0]
    with pytest.raises(DataError, match="no top-K list"):
        bucket_recall(top, np.array([10]), pairs, buckets)
