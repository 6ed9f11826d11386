"""Tests for mmjax.eval: full-ranking metrics against a brute-force numpy reference (MMRec's definitions)."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.errors import ConfigError, DataError
from mmjax.eval import EvalSet, build_eval_set, evaluate, hit_matrix, top_k_unmasked
from mmjax.eval import ranking


def table_scores(table, query):
    """score_fn over a dense [num_users, num_items] score table; module-level so jit caches it."""
    return table[query["users"]]


def reference_metrics(table: np.ndarray, truth: dict[int, set[int]], train: dict[int, set[int]],
                      ks: tuple[int, ...]) -> dict[str, float]:
    """Brute force, one user at a time: mask train items, stable sort by -score, MMRec's formulas."""
    per_user: dict[str, list[float]] = {}
    top = max(ks)
    for user in sorted(truth):
        scores = table[user].astype(np.float64)
        scores[sorted(train.get(user, set()))] = -np.inf
        ranked = np.argsort(-scores, kind="stable")[:top]
        hits = [1.0 if item in truth[user] else 0.0 for item in ranked]
        positives = len(truth[user])
        for k in ks:
            found = sum(hits[:k])
            dcg = sum(hits[r] / math.log2(r + 2) for r in range(k))
            ideal = sum(1.0 / math.log2(r + 2) for r in range(min(positives, k)))
            ap = sum(hits[r] * sum(hits[:r + 1]) / (r + 1) for r in range(k))
            for name, value in (("recall", found / positives), ("ndcg", dcg / ideal),
                                ("precision", found / k), ("map", ap / min(positives, k))):
                per_user.setdefault(f"{name}@{k}", []).append(value)
    return {name: float(np.mean(values)) for name, values in per_user.items()}


def csr(sets: dict[int, set[int]], num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) over all users of per-user item sets."""
    rows = [sorted(sets.get(u, set())) for u in range(num_users)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.array([i for r in rows for i in r], dtype=np.int32)
    return indptr, indices


def pairs_of(sets: dict[int, set[int]]) -> np.ndarray:
    return np.array([(u, i) for u, items in sets.items() for i in sorted(items)], dtype=np.int32)


def random_problem(seed: int, num_users: int, num_items: int, max_train: int, max_truth: int,
                   distinct_scores: int | None):
    """Random scores (few distinct values -> many exact ties), disjoint train / ground-truth sets.

    User 0 has max_truth ground-truth items, user 1 exactly one, user 2 no train items; about one user in
    five is not evaluated.
    """
    rng = np.random.default_rng(seed)
    if distinct_scores is None:
        table = rng.normal(size=(num_users, num_items)).astype(np.float32)
    else:
        table = rng.integers(0, distinct_scores, size=(num_users, num_items)).astype(np.float32)
    train, truth = {}, {}
    for user in range(num_users):
        items = rng.permutation(num_items)
        n_train = 0 if user == 2 else int(rng.integers(0, max_train + 1))
        n_truth = {0: max_truth, 1: 1}.get(user, int(rng.integers(1, max_truth + 1)))
        train[user] = set(items[:n_train].tolist())
        if user < 3 or rng.random() > 0.2:
            truth[user] = set(items[n_train:n_train + n_truth].tolist())
    return table, train, truth


def run_both(table, train, truth, num_items, ks, block_size):
    indptr, indices = csr(train, table.shape[0])
    eval_set = build_eval_set(pairs_of(truth), indptr, indices, num_items)
    ours = evaluate(table_scores, jnp.asarray(table), eval_set, ks=ks, block_size=block_size)
    return ours, reference_metrics(table, truth, train, ks)


def assert_metrics_close(ours: dict[str, float], expected: dict[str, float]) -> None:
    assert ours.keys() == expected.keys()
    for name in expected:
        assert isinstance(ours[name], float)
        assert ours[name] == pytest.approx(expected[name], abs=1e-6), name


def test_hand_computed_single_user():
    # Item 3 is a train item (masked). Ranking: 1 (0.9), 2 (0.5), 4 (0.3), 0 (0.1), 3. Truth {0, 2}.
    table = np.array([[0.1, 0.9, 0.5, 0.7, 0.3]], dtype=np.float32)
    eval_set = build_eval_set(np.array([[0, 2], [0, 0]]), np.array([0, 1]), np.array([3]), 5)
    got = evaluate(table_scores, jnp.asarray(table), eval_set, ks=(1, 2, 4))
    log3, log5 = math.log2(3), math.log2(5)
    expected = {
        "recall@1": 0.0, "recall@2": 0.5, "recall@4": 1.0,
        "precision@1": 0.0, "precision@2": 0.5, "precision@4": 0.5,
        "ndcg@1": 0.0, "ndcg@2": (1 / log3) / (1 + 1 / log3), "ndcg@4": (1 / log3 + 1 / log5) / (1 + 1 / log3),
        "map@1": 0.0, "map@2": (1 / 2) / 2, "map@4": (1 / 2 + 2 / 4) / 2,
    }
    assert_metrics_close(got, expected)
    assert got["ndcg@2"] == pytest.approx(1 / math.log2(6), abs=1e-6)


@pytest.mark.parametrize("seed,num_users,num_items,max_train,max_truth,ks,block_size,distinct", [
    (0, 37, 60, 10, 25, (1, 5, 10, 20), 8, 3),  # ties; truth * K > items: dense-mask hit path
    (1, 50, 500, 30, 8, (5, 10, 20, 50), 16, None),  # comparison hit path; last block padded
    (2, 23, 40, 12, 15, (5, 10), 1000, 2),  # block larger than the number of users
    (3, 12, 30, 25, 4, (3, 7), 1, 4),  # one user per block; users with fewer unmasked items than K
])
def test_matches_reference(seed, num_users, num_items, max_train, max_truth, ks, block_size, distinct):
    table, train, truth = random_problem(seed, num_users, num_items, max_train, max_truth, distinct)
    ours, expected = run_both(table, train, truth, num_items, ks, block_size)
    assert_metrics_close(ours, expected)


def test_block_size_does_not_change_results():
    table, train, truth = random_problem(4, 41, 80, 10, 6, 5)
    results = [run_both(table, train, truth, 80, (5, 10, 20), block)[0] for block in (1, 7, 41, 4096)]
    for other in results[1:]:
        assert other == pytest.approx(results[0], abs=1e-6)


def test_default_ks_keys():
    table, train, truth = random_problem(5, 20, 120, 5, 3, None)
    ours, expected = run_both(table, train, truth, 120, (5, 10, 20, 50), 4096)
    indptr, indices = csr(train, 20)
    default = evaluate(table_scores, jnp.asarray(table), build_eval_set(pairs_of(truth), indptr, indices, 120))
    assert list(default) == [f"{m}@{k}" for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)]
    assert_metrics_close(default, expected)


def test_masked_items_never_in_top_k():
    rng = np.random.default_rng(6)
    scores = jnp.asarray(rng.integers(0, 3, size=(16, 50)).astype(np.float32))
    exclude = rng.integers(0, 51, size=(16, 20)).astype(np.int32)  # 50 = padding
    top = np.asarray(top_k_unmasked(scores, jnp.asarray(exclude), 25))
    for row in range(16):
        assert not set(top[row].tolist()) & (set(exclude[row].tolist()) - {50})


def test_masked_ground_truth_is_never_hit():
    # Ground truth equal to the (top-scored) train items: all masked, so every metric is 0.
    table = np.zeros((4, 30), np.float32)
    table[:, :5] = 10.0
    train = {u: set(range(5)) for u in range(4)}
    ours, expected = run_both(table, train, train, 30, (5, 10), 4096)
    assert all(value == 0.0 for value in ours.values())
    assert_metrics_close(ours, expected)


def test_validation_items_are_not_masked():
    # Train {0, 1}, validation {2, 3}, test {4}; scores rank 0 > 1 > 2 > 3 > 4 > rest.
    table = np.linspace(1.0, 0.0, 10, dtype=np.float32)[None, :]
    indptr, indices = np.array([0, 2]), np.array([0, 1])
    valid_set = build_eval_set(np.array([[0, 2], [0, 3]]), indptr, indices, 10)
    test_set = build_eval_set(np.array([[0, 4]]), indptr, indices, 10)
    valid = evaluate(table_scores, jnp.asarray(table), valid_set, ks=(2, 5))
    test = evaluate(table_scores, jnp.asarray(table), test_set, ks=(2, 5))
    assert valid["recall@2"] == pytest.approx(1.0)  # validation items can be hit
    assert test["recall@2"] == 0.0 and test["recall@5"] == 1.0  # they still occupy ranks 1-2 for test
    assert test["ndcg@5"] == pytest.approx(1 / math.log2(4))
    assert_metrics_close(test, reference_metrics(table, {0: {4}}, {0: {0, 1}}, (2, 5)))


def test_hit_matrix_paths_agree():
    rng = np.random.default_rng(7)
    top = jnp.asarray(rng.integers(0, 40, size=(9, 10)).astype(np.int32))
    truth = rng.integers(0, 40, size=(9, 6)).astype(np.int32)
    truth[rng.random(truth.shape) < 0.3] = -1
    dense = hit_matrix(top, jnp.asarray(truth), 40)  # 6 * 10 > 40: dense-mask path
    compare = hit_matrix(top, jnp.asarray(truth), 60)  # 6 * 10 <= 60: comparison path
    expected = np.array([[item in set(row) for item in top_row] for top_row, row in zip(np.asarray(top), truth)])
    np.testing.assert_array_equal(np.asarray(dense), expected)
    np.testing.assert_array_equal(np.asarray(compare), expected)


def test_compiles_once_and_caches_device_arrays():
    traces = []

    def counting_scores(table, query):
        traces.append(query["users"].shape)
        return table[query["users"]]

    table, train, truth = random_problem(8, 10, 20, 3, 3, None)
    indptr, indices = csr(train, 10)
    eval_set = build_eval_set(pairs_of(truth), indptr, indices, 20)
    for epoch in range(3):  # new score state each "epoch", same shapes: no retrace
        evaluate(counting_scores, jnp.asarray(table + epoch), eval_set, ks=(5,), block_size=4)
    assert traces == [(4,)]
    assert ranking._device_blocks(eval_set, 4) is ranking._device_blocks(eval_set, 4)


def test_views_of_one_task_share_the_compiled_block_program():
    """Valid and test differ in users, ground-truth and exclusion widths; padded to bucketed widths their
    blocks have one shape, so the block program is traced (and compiled) once for both."""
    traces = []

    def counting_scores(table, query):
        traces.append(query["users"].shape)
        return table[query["users"]]

    table = np.random.default_rng(3).random((12, 40)).astype(np.float32)
    indptr, indices = np.array([0, 3, 5, 9] + [9] * 9), np.array([0, 1, 2, 3, 4, 5, 6, 7, 8], np.int32)
    valid = build_eval_set(np.array([[0, 10], [1, 11], [2, 12], [2, 13], [2, 15], [5, 14]]), indptr, indices, 40)
    test = build_eval_set(np.array([[0, 20], [1, 21], [3, 22], [4, 23], [4, 24], [4, 25], [4, 27], [6, 26]]),
                          indptr, indices, 40)  # ground truth 3 and 4 wide, exclusions 4 and 3: widths 4
    assert valid.ground_truth.shape[1] != test.ground_truth.shape[1] and valid.num_users != test.num_users
    for view in (valid, test, valid):
        evaluate(counting_scores, jnp.asarray(table), view, ks=(5,), block_size=2)
    assert traces == [(2,)]
    assert [ranking.bucketed_width(w) for w in (1, 3, 13, 16, 17, 573, 603)] == [1, 4, 16, 16, 20, 640, 640]


def test_build_eval_set_layout():
    pairs = np.array([[3, 5], [1, 2], [3, 0], [1, 2], [3, 4]])  # duplicate (1, 2) counts once
    indptr, indices = np.array([0, 1, 1, 3, 4]), np.array([7, 1, 3, 6])
    eval_set = build_eval_set(pairs, indptr, indices, 8)
    assert isinstance(eval_set, EvalSet) and eval_set.num_users == 2 and eval_set.num_items == 8
    np.testing.assert_array_equal(eval_set.users, [1, 3])
    np.testing.assert_array_equal(eval_set.ground_truth, [[2, -1, -1], [0, 4, 5]])
    np.testing.assert_array_equal(eval_set.exclude, [[8], [6]])
    assert all(a.dtype == np.int32 for a in (eval_set.users, eval_set.ground_truth, eval_set.exclude))


def test_build_eval_set_without_train_items_pads_exclude():
    eval_set = build_eval_set(np.array([[0, 1], [1, 0]]), np.zeros(3, np.int64), np.zeros(0, np.int32), 4)
    np.testing.assert_array_equal(eval_set.exclude, [[4], [4]])


@pytest.mark.parametrize("pairs,indptr,indices,message", [
    (np.zeros((0, 2), np.int32), [0, 0], [], "no \\(user, item\\) pairs"),
    (np.array([[2, 0]]), [0, 0, 0], [], "user ids"),
    (np.array([[-1, 0]]), [0, 0, 0], [], "user ids"),
    (np.array([[0, 5]]), [0, 0, 0], [], "item ids"),
    (np.array([[0, -1]]), [0, 0, 0], [], "item ids"),
    (np.array([[0, 1]]), [0, 1, 1], [5], "exclude CSR: item ids"),
    (np.array([[0, 1]]), [0, 2, 1], [1], "exclude CSR"),
    (np.array([0, 1]), [0, 0, 0], [], "expected an int array"),
    (np.array([[0.0, 1.0]]), [0, 0, 0], [], "expected an int array"),
])
def test_build_eval_set_errors(pairs, indptr, indices, message):
    with pytest.raises(DataError, match=message):
        build_eval_set(pairs, np.array(indptr), np.array(indices, dtype=np.int32), 5)


@pytest.mark.parametrize("ks,block_size,message", [
    ((5, 11), 8, "exceeds the number of items"),
    ((0, 5), 8, "positive ints"),
    ((-1,), 8, "positive ints"),
    ((2.5,), 8, "positive ints"),
    ((True,), 8, "positive ints"),
    ((), 8, "positive ints"),
    ((5,), 0, "positive int"),
])
def test_evaluate_config_errors(ks, block_size, message):
    eval_set = build_eval_set(np.array([[0, 1]]), np.array([0, 0]), np.zeros(0, np.int32), 10)
    with pytest.raises(ConfigError, match=message):
        evaluate(table_scores, jnp.zeros((1, 10)), eval_set, ks=ks, block_size=block_size)


def test_score_shape_mismatch_is_reported():
    eval_set = build_eval_set(np.array([[0, 1]]), np.array([0, 0]), np.zeros(0, np.int32), 10)
    with pytest.raises(ConfigError, match="score_fn"):
        evaluate(table_scores, jnp.zeros((1, 12)), eval_set, ks=(5,))


def reference_hr_mrr(table, truth, exclude_sets, ks, candidates=None):
    """Brute force hr@k and mrr@k (first hit's reciprocal rank), candidates only when given."""
    out: dict[str, list[float]] = {}
    for user in sorted(truth):
        scores = table[user].astype(np.float64)
        scores[sorted(exclude_sets.get(user, set()))] = -np.inf
        if candidates is not None:
            scores[np.setdiff1d(np.arange(len(scores)), candidates)] = -np.inf
        ranked = np.argsort(-scores, kind="stable")[:max(ks)]
        first = next((r + 1 for r, item in enumerate(ranked) if item in truth[user]), None)
        for k in ks:
            out.setdefault(f"hr@{k}", []).append(float(first is not None and first <= k))
            out.setdefault(f"mrr@{k}", []).append(1.0 / first if first is not None and first <= k else 0.0)
    return {name: float(np.mean(v)) for name, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_hr_and_mrr_match_brute_force(seed):
    table, train, truth = random_problem(seed, 30, 40, 6, 3, None)
    indptr, indices = csr(train, 30)
    eval_set = build_eval_set(pairs_of(truth), indptr, indices, 40)
    got = evaluate(table_scores, jnp.asarray(table), eval_set, ks=(1, 5, 10), metrics=("hr", "mrr"), block_size=7)
    assert sorted(got) == sorted(reference_hr_mrr(table, truth, train, (1, 5, 10)))
    for name, value in reference_hr_mrr(table, truth, train, (1, 5, 10)).items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    # with one target, hr == recall
    single = {u: {min(items)} for u, items in truth.items()}
    one = evaluate(table_scores, jnp.asarray(table), build_eval_set(pairs_of(single), indptr, indices, 40),
                   ks=(5,), metrics=("hr", "recall"))
    assert one["hr@5"] == pytest.approx(one["recall@5"])


def test_candidates_restrict_the_ranking():
    table, train, truth = random_problem(3, 20, 30, 4, 2, None)
    indptr, indices = csr(train, 20)
    candidates = np.arange(10, 30, dtype=np.int32)
    truth = {u: {i for i in items if i >= 10} for u, items in truth.items()}
    truth = {u: items for u, items in truth.items() if items}
    full = build_eval_set(pairs_of(truth), indptr, indices, 30)
    restricted = dataclasses.replace(full, candidates=candidates)
    got = evaluate(table_scores, jnp.asarray(table), restricted, ks=(3, 8), metrics=("hr", "mrr"))
    reference = reference_hr_mrr(table, truth, train, (3, 8), candidates)
    for name, value in reference.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name
    assert got != evaluate(table_scores, jnp.asarray(table), full, ks=(3, 8), metrics=("hr", "mrr"))
    with pytest.raises(ConfigError, match="items to rank"):
        evaluate(table_scores, jnp.asarray(table), dataclasses.replace(full, candidates=np.arange(5)), ks=(6,))


def history_scores(table, query):
    """Scores read from per-query inputs: each query's row of the table is its 'history' id, not its user."""
    return table[query["history"][:, 0]]


def test_per_query_inputs_reach_the_scorer():
    table = np.random.default_rng(0).normal(size=(6, 12)).astype(np.float32)
    users = np.array([0, 0, 1], np.int32)  # one user may have several queries
    history = np.array([[4], [5], [2]], np.int32)
    truth = np.array([[int(np.argmax(table[4]))], [int(np.argmax(table[5]))], [int(np.argmax(table[2]))]], np.int32)
    view = EvalSet(users=users, ground_truth=truth, exclude=np.full((3, 1), 12, np.int32), num_items=12,
                   inputs={"history": history})
    got = evaluate(history_scores, jnp.asarray(table), view, ks=(1,), metrics=("hr",), block_size=2)
    assert got["hr@1"] == 1.0
    with pytest.raises(DataError, match="inputs"):
        EvalSet(users=users, ground_truth=truth, exclude=np.full((3, 1), 12, np.int32), num_items=12,
                inputs={"history": history[:2]})


def test_unknown_metric_and_monitor_are_config_errors():
    import ml_collections
    from mmjax.train.loop import eval_spec
    table, train, truth = random_problem(0, 5, 10, 2, 2, None)
    indptr, indices = csr(train, 5)
    with pytest.raises(ConfigError, match="eval.metrics"):
        evaluate(table_scores, jnp.asarray(table), build_eval_set(pairs_of(truth), indptr, indices, 10),
                 ks=(2,), metrics=("auc",))
    base = dict(ks=(5, 10), metrics=("hr", "ndcg"), monitor="ndcg@10", every=1, batch_size=8)
    assert eval_spec(ml_collections.ConfigDict(base)).headline() == ("ndcg@10", "hr@10")
    for bad in ({"monitor": "recall@10"}, {"monitor": "ndcg@20"}, {"monitor": "ndcg"}, {"every": 0}):
        with pytest.raises(ConfigError):
            eval_spec(ml_collections.ConfigDict({**base, **bad}))
