"""--mode=eval reproduces results.json from the best checkpoint; --mode=recommend writes top-K unseen items."""

import csv
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from mmjax.errors import MmjaxError
from mmjax.train.train import evaluate_best, load_best, parse_users, recommend, train_and_evaluate

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config():
    # patience 1 stops early on some seeds, so the best epoch need not be the last
    config = helpers.small_config(users=200, items=120, learning_rate=0.01, num_epochs=6, patience=1)
    config.recommend.k = 7
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    results = train_and_evaluate(small_config(), str(workdir))
    return workdir, results


def read_recommendations(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["user_id", "rank", "item_id", "score"]
    return [(int(u), int(r), int(i), float(s)) for u, r, i, s in rows[1:]]


def test_eval_mode_reproduces_results_json(trained):
    workdir, results = trained
    out = evaluate_best(small_config(), str(workdir))
    assert out["best_epoch"] == results["best_epoch"]
    assert out["valid"] == results["valid"] and out["test"] == results["test"]
    assert json.loads((workdir / "eval.json").read_text())["test"] == results["test"]


def test_recommend_writes_the_top_k_unseen_items_of_every_user(trained):
    workdir, _ = trained
    config = small_config()
    path = recommend(config, str(workdir))
    rows = read_recommendations(path)
    dataset, task, params, _ = load_best(config, str(workdir))
    user_vectors, item_vectors = (np.asarray(a) for a in jax.jit(task.score_state)(params, task.consts, None))
    scores = user_vectors @ item_vectors.T
    seen = np.zeros_like(scores, dtype=bool)
    for split in (dataset.train, dataset.valid, dataset.test):
        seen[split[:, 0], split[:, 1]] = True
    assert len(rows) == dataset.num_users * 7
    by_user = {}
    for user, rank, item, score in rows:
        by_user.setdefault(user, []).append((rank, item, score))
    for user, entries in by_user.items():
        ranks, items, got = zip(*entries)
        assert list(ranks) == list(range(1, 8))
        assert not seen[user, list(items)].any()
        masked = np.where(seen[user], -np.inf, scores[user])
        expected = np.sort(masked)[::-1][:7]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        assert all(a >= b for a, b in zip(got, got[1:]))


def test_recommend_for_chosen_users_and_unknown_user(trained):
    workdir, _ = trained
    rows = read_recommendations(recommend(small_config(), str(workdir), users=[5, 0]))
    assert [u for u, *_ in rows] == [5] * 7 + [0] * 7
    with pytest.raises(MmjaxError, match="user id 999 is unknown"):
        recommend(small_config(), str(workdir), users=[1, 999])


def test_parse_users(tmp_path):
    assert parse_users(None) is None
    assert list(parse_users("3, 1,2")) == [3, 1, 2]
    (tmp_path / "users.txt").write_text("4\n5\n")
    assert list(parse_users(str(tmp_path / "users.txt"))) == [4, 5]
    with pytest.raises(MmjaxError, match="'x'"):
        parse_users("1,x")


def run_main(workdir, *flags):
    command = [sys.executable, "-m", "mmjax.main", "--config=configs/lightgcn.py", f"--workdir={workdir}",
               "--config.data.synthetic.num_users=100", "--config.data.synthetic.num_items=60",
               "--config.train.num_epochs=2", *flags]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_modes(tmp_path):
    missing = run_main(tmp_path / "empty", "--mode=eval")
    assert missing.returncode == 2 and "no best-valid checkpoint" in missing.stderr
    assert run_main(tmp_path, "--mode=train").returncode == 0
    evaluated = run_main(tmp_path, "--mode=eval")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert json.loads((tmp_path / "eval.json").read_text())["test"] == results["test"]
    recommended = run_main(tmp_path, "--mode=recommend", "--users=3,4", "--config.recommend.k=5")
    assert recommended.returncode == 0, recommended.stderr[-2000:]
    assert len(read_recommendations(tmp_path / "recommendations.csv")) == 10
    unknown = run_main(tmp_path, "--mode=recommend", "--users=100")
    assert unknown.returncode == 2 and "error: users: user id 100 is unknown" in unknown.stderr
