"""Exact top-k by bounds: the certified candidate path and the full fall-back both equal plain top-k."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.eval import top_k_masked
from mmjax.eval.pruning import bounded_top_k, candidate_top_k, padded_upper

ITEMS = 300


def scored(seed=0, rows=8, ties=False):
    rng = np.random.default_rng(seed)
    cheap = rng.normal(size=(rows, ITEMS)).astype(np.float32)
    if ties:  # many exactly equal scores: the lower item id must win, as in top_k_masked
        cheap = np.round(cheap * 2) / 2
    correction = rng.uniform(-1, 1, size=(rows, ITEMS)).astype(np.float32)
    exclude = rng.integers(0, ITEMS + 1, size=(rows, 20)).astype(np.int32)  # ITEMS = padding
    return jnp.asarray(cheap), jnp.asarray(correction), jnp.asarray(exclude)


def ranked(cheap, correction, exclude, width, k, candidates):
    """bounded_top_k of cheap + width * correction (|correction| <= 1), plus the rows' certificates."""
    full = cheap + width * correction
    upper = padded_upper(cheap, jnp.full_like(cheap, width))

    def exact(ids):
        return jnp.take_along_axis(full, ids, axis=1)

    calls = {"full": 0}

    def full_scores():
        calls["full"] += 1
        return full

    out = jax.jit(lambda: bounded_top_k(upper, exclude, exact, full_scores, k, candidates))()
    certified = candidate_top_k(upper, exclude, exact, k, max(candidates, k))[2]
    return full, out, np.asarray(certified)


@pytest.mark.parametrize("width, expect_certified", [(0.01, True), (3.0, False)])
def test_bounded_top_k_equals_plain_top_k(width, expect_certified):
    cheap, correction, exclude = scored()
    full, (scores, ids), certified = ranked(cheap, correction, exclude, width, 10, 40)
    expected_scores, expected_ids = top_k_masked(full, exclude, 10)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores)
    assert certified.all() == expect_certified  # tight bounds take the candidate path, loose ones fall back
    assert not np.any(np.asarray(ids)[:, :, None] == np.asarray(exclude)[:, None, :])


def test_ties_go_to_the_lower_item_id_on_the_candidate_path():
    cheap, _, exclude = scored(ties=True)
    exact = lambda ids: jnp.take_along_axis(cheap, ids, axis=1)  # noqa: E731
    scores, ids, _ = candidate_top_k(padded_upper(cheap, jnp.zeros_like(cheap)), exclude, exact, 10, 40)
    expected_scores, expected_ids = top_k_masked(cheap, exclude, 10)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)


def test_certificate_fails_when_a_left_out_item_could_beat_the_kth():
    """A left-out item whose bound exceeds the k-th exact score leaves the row uncertified."""
    cheap = jnp.asarray(np.arange(ITEMS, dtype=np.float32)[None, ::-1].copy())  # item 0 best
    exclude = jnp.full((1, 1), ITEMS, jnp.int32)
    upper = cheap.at[0, 200].set(1e6)  # a loose bound puts item 200 first; 5 candidates leave item 4 out
    scores, ids, certified = candidate_top_k(upper, exclude, lambda i: jnp.take_along_axis(cheap, i, 1), 3, 5)
    np.testing.assert_array_equal(ids, [[0, 1, 2]])
    assert bool(certified[0])  # item 4's bound (295) is below the 3rd exact score (297)
    scores, ids, certified = candidate_top_k(upper, exclude, lambda i: jnp.take_along_axis(cheap, i, 1), 5, 5)
    assert not bool(certified[0])  # the 5th exact score (the candidate 200's 99) is below item 4's bound


def test_more_candidates_than_items_scores_every_item():
    cheap, _, exclude = scored(rows=3)
    upper = padded_upper(cheap, jnp.zeros_like(cheap))
    out = bounded_top_k(upper, exclude, lambda i: pytest.fail("no candidates when C >= items"), lambda: cheap, 10,
                        ITEMS)
    np.testing.assert_array_equal(out[1], top_k_masked(cheap, exclude, 10)[1])
