"""What a workdir trusts: checkpoints checked against their checksums, runs checked against their config and
data, non-finite states never saved, and file-system failures reported in one line.

Faults are injected into real Orbax files (byte flips, truncation, deleted metadata, an edited JSON digit);
read-only and full file systems are real tmpfs mounts where the test may mount one, else a patched write.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config_files import load_config_file, with_overrides
from mmjax.data import load_mmrec_dir
from mmjax.errors import ConfigError, MmjaxError, describe_os_error
from mmjax.eval import NonFiniteScoresError, build_eval_set, evaluate, recommend_top_k
from mmjax.train import checkpoint as checkpoint_module
from mmjax.train.loop import NonFiniteTrainingError
from mmjax.train.train import evaluate_best, parse_users, recommend, train_and_evaluate

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(**train):
    return helpers.small_config(**{"learning_rate": 0.01, **train})


def steps(workdir: Path, kind: str) -> list[int]:
    folder = workdir / "checkpoints" / kind
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


# -- faults, each applied to one item ('state', 'params', ...) of one checkpoint step

def largest_array_file(item: Path) -> Path:
    return max((p for p in item.rglob("*") if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size)


def flip_byte(item: Path) -> None:
    path = largest_array_file(item)
    data = bytearray(path.read_bytes())
    data[min(150_000, len(data) // 2)] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(item: Path) -> None:
    path = largest_array_file(item)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete_metadata(item: Path) -> None:
    """The OCDBT manifest, without which the arrays cannot be found."""
    (item / "manifest.ocdbt").unlink()


def edit_json_digit(item: Path) -> None:
    """A changed digit in the JSON saved beside the arrays: still valid JSON, so only a checksum sees it."""
    path = item.parent / {"state": "progress", "params": "info"}[item.name] / "metadata"
    text = path.read_text()
    match = re.search(r'"recall@20": 0\.(\d)', text)
    digit = match.group(1)
    path.write_text(text[:match.start(1)] + str((int(digit) + 1) % 10) + text[match.end(1):])


FAULTS = {"byte flip": flip_byte, "truncated file": truncate, "deleted metadata": delete_metadata,
          "edited JSON": edit_json_digit}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 6-epoch run, and a 4-epoch run of the same config to corrupt and resume."""
    root = tmp_path_factory.mktemp("runs")
    reference = train_and_evaluate(small_config(num_epochs=6), str(root / "reference"))
    train_and_evaluate(small_config(num_epochs=4), str(root / "four"))
    return reference, root / "four"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_corrupt_latest_is_set_aside_and_the_run_resumes_from_the_one_before(runs, tmp_path, fault, caplog):
    reference, four = runs
    workdir = tmp_path / "run"
    shutil.copytree(four, workdir)
    assert steps(workdir, "latest") == [3, 4]
    FAULTS[fault](workdir / "checkpoints" / "latest" / "4" / "state")
    with caplog.at_level("WARNING"):
        resumed = train_and_evaluate(small_config(num_epochs=6), str(workdir))
    assert any("latest/4 is partial or corrupt" in r.getMessage() for r in caplog.records)
    assert [p.name.split("-")[:2] for p in (workdir / "checkpoints" / "corrupt").iterdir()] == [["latest", "4"]]
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert resumed[key] == reference[key], key
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(6))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_corrupt_best_falls_back_to_the_previous_best_and_refuses_when_none_is_left(runs, tmp_path, fault,
                                                                                      caplog):
    _, four = runs
    workdir = tmp_path / "run"
    shutil.copytree(four, workdir)
    newest, previous = steps(workdir, "best")[::-1]
    FAULTS[fault](workdir / "checkpoints" / "best" / str(newest) / "params")
    with caplog.at_level("WARNING"):
        out = evaluate_best(small_config(num_epochs=4), str(workdir))
    assert out["best_epoch"] == previous
    assert any(f"best/{newest} is partial or corrupt" in r.getMessage() for r in caplog.records)
    assert any(f"using {workdir}/checkpoints/best/{previous}" in r.getMessage() for r in caplog.records)
    FAULTS[fault](workdir / "checkpoints" / "best" / str(previous) / "params")
    with pytest.raises(MmjaxError, match="every best-valid checkpoint .* is corrupt"):
        evaluate_best(small_config(num_epochs=4), str(workdir))


def test_a_step_missing_only_descriptive_metadata_is_still_used(runs, tmp_path, caplog):
    """Orbax restores the same arrays without _CHECKPOINT_METADATA or _sharding; the checksums confirm it."""
    reference, four = runs
    workdir = tmp_path / "run"
    shutil.copytree(four, workdir)
    step = workdir / "checkpoints" / "latest" / "4"
    for name in ("_CHECKPOINT_METADATA", "state/_sharding"):
        (step / name).unlink()
    with caplog.at_level("INFO"):
        resumed = train_and_evaluate(small_config(num_epochs=6), str(workdir))
    assert not (workdir / "checkpoints" / "corrupt").exists() and "resuming from" in caplog.text
    assert f"{workdir}/checkpoints/latest/4: 4 epochs done" in caplog.text
    assert resumed["test"] == reference["test"]


def test_a_resume_sets_a_corrupt_best_aside_and_says_what_eval_will_load(runs, tmp_path, caplog):
    _, four = runs
    workdir = tmp_path / "run"
    shutil.copytree(four, workdir)
    newest, previous = steps(workdir, "best")[::-1]
    flip_byte(workdir / "checkpoints" / "best" / str(newest) / "params")
    with caplog.at_level("WARNING"):
        train_and_evaluate(small_config(num_epochs=4), str(workdir))  # finished: trains nothing
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"best/{newest} is partial or corrupt" in messages
    assert f"best epoch {newest} has no intact checkpoint" in messages and f"load epoch {previous}" in messages


# -- the run's identity under eval and recommend

def test_eval_and_recommend_refuse_another_config_and_leave_the_workdir_alone(runs, tmp_path):
    _, four = runs
    workdir = tmp_path / "run"
    shutil.copytree(four, workdir)
    evaluate_best(small_config(num_epochs=4), str(workdir))
    written = (workdir / "eval.json").read_text()
    other = small_config(num_epochs=4)
    other.model.n_layers = 3
    for mode in (evaluate_best, recommend):
        with pytest.raises(MmjaxError, match=r"trained with another config: it differs at config\.model\.n_layers "
                                             r"\(2 vs 3\)"):
            mode(other, str(workdir))
    assert (workdir / "eval.json").read_text() == written and not (workdir / "recommendations.csv").exists()
    # fields that do not change the trained model may differ
    longer = small_config(num_epochs=50, patience=3)
    longer.eval.ks = (10, 20)
    assert set(evaluate_best(longer, str(workdir))["test"]) == {f"{m}@{k}" for m in ("recall", "ndcg", "precision",
                                                                                        "map") for k in (10, 20)}


def write_mmrec_dir(path: Path, seed: int) -> Path:
    """A small MMRec directory: 40 users x 12 interactions over 30 items, each user's split drawn by `seed`."""
    rng = np.random.default_rng(seed)
    lines = ["userID\titemID\tx_label"]
    for user in range(40):
        items = np.random.default_rng(user).choice(30, size=12, replace=False)
        labels = rng.permutation([0] * 8 + [1] * 2 + [2] * 2)
        lines += [f"{user}\t{item}\t{label}" for item, label in zip(items, labels)]
    path.mkdir(parents=True, exist_ok=True)
    (path / "toy.inter").write_text("\n".join(lines) + "\n")
    return path


def test_eval_and_recommend_refuse_a_re_split_copy_of_the_data(tmp_path):
    data = write_mmrec_dir(tmp_path / "data", seed=0)
    config = small_config(num_epochs=2)
    config.data.dir = str(data)
    config.eval.ks = (5, 10, 20)
    train_and_evaluate(config, str(tmp_path / "run"))
    trained_on = load_mmrec_dir(str(data)).checksum
    write_mmrec_dir(data, seed=1)  # same folder, same users and items, another split
    for mode in (evaluate_best, recommend):
        with pytest.raises(MmjaxError, match=f"trained on other data: the dataset checksum differs at "
                                             f"dataset_checksum \\(\"{trained_on}\" vs"):
            mode(config, str(tmp_path / "run"))


def test_eval_on_a_missing_workdir_creates_nothing(tmp_path):
    with pytest.raises(MmjaxError, match="no best-valid checkpoint"):
        evaluate_best(small_config(), str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()


# -- non-finite states

def test_overflowed_parameters_are_never_saved_and_the_workdir_takes_the_corrected_config(tmp_path):
    workdir = tmp_path / "run"
    # one step per epoch: the loss of epoch 0 is computed before its update and is finite
    with pytest.raises(NonFiniteTrainingError, match="score items non-finitely .* at epoch 0; nothing of it was "
                                                     "saved, and no checkpoint was saved before it"):
        train_and_evaluate(small_config(num_epochs=3, batch_size=100_000, learning_rate=1e30), str(workdir))
    assert steps(workdir, "latest") == [] and steps(workdir, "best") == []
    results = train_and_evaluate(small_config(num_epochs=2, batch_size=100_000), str(workdir))
    assert results["epochs_run"] == 2 and np.isfinite(results["test"]["recall@20"])


def test_a_run_failed_on_a_config_error_leaves_its_workdir_open(tmp_path):
    bad = small_config(num_epochs=2)
    bad.eval.ks = (20, 100_000)  # beyond the item count: found at the first evaluation
    with pytest.raises(ConfigError, match="eval.ks"):
        train_and_evaluate(bad, str(tmp_path))
    assert (tmp_path / "checkpoints" / "run.json").exists()
    assert train_and_evaluate(small_config(num_epochs=2), str(tmp_path))["epochs_run"] == 2


def test_a_changed_config_is_still_refused_once_checkpoints_exist(runs, tmp_path, monkeypatch):
    _, four = runs
    shutil.copytree(four, tmp_path / "run")
    closed = []
    real_close = checkpoint_module.RunCheckpoints.close
    monkeypatch.setattr(checkpoint_module.RunCheckpoints, "close", lambda self: closed.append(1) or real_close(self))
    with pytest.raises(MmjaxError, match="holds checkpoints of another run"):
        train_and_evaluate(small_config(num_epochs=4, learning_rate=0.5), str(tmp_path / "run"))
    assert closed  # the refused run shuts Orbax down (an open manager failed at interpreter exit)


def score_all(state, query):
    return state[query["users"]]


def test_evaluate_and_recommend_refuse_non_finite_scores():
    scores = jnp.asarray(np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32))
    eval_set = build_eval_set(np.array([[0, 1], [1, 2], [2, 3], [3, 4]]), np.array([0, 1, 2, 2, 3]),
                              np.array([5, 6, 7], np.int32), 10)
    indptr, indices = np.array([0, 1, 2, 2, 3]), np.array([5, 6, 7], np.int32)
    evaluate(score_all, scores, eval_set, ks=(5,))  # finite: fine
    recommend_top_k(score_all, scores, np.arange(4), indptr, indices, 10, 9)  # user 0 has 9 candidates
    for bad in (jnp.inf, jnp.nan, -jnp.inf):
        broken = scores.at[2].set(bad)
        with pytest.raises(NonFiniteScoresError, match="1 of 4 evaluated users have NaN or inf"):
            evaluate(score_all, broken, eval_set, ks=(5,))
        with pytest.raises(NonFiniteScoresError, match=r"1 of 4 users \(first: user 2\)"):
            recommend_top_k(score_all, broken, np.arange(4), indptr, indices, 10, 5)
    # -inf on masked items only is what masking does
    masked = scores.at[0, 5].set(-jnp.inf)
    recommend_top_k(score_all, masked, np.arange(4), indptr, indices, 10, 9)


def test_recommend_says_why_users_get_fewer_than_k_rows(runs, tmp_path, caplog):
    _, four = runs
    workdir = tmp_path / "run"
    shutil.copytree(four, workdir)
    config = small_config(num_epochs=4)
    config.recommend.k = 150  # every item
    with caplog.at_level("INFO"):
        path = recommend(config, str(workdir), users=[0, 1])
    rows = len(Path(path).read_text().splitlines()) - 1
    message = next(r.getMessage() for r in caplog.records if "recommendations.csv" in r.getMessage())
    assert message.startswith(f"wrote {rows} rows, the top 150 items of 2 users") and rows < 300
    assert "2 of them have fewer than 150 items outside their train/valid/test interactions" in message


def test_an_all_zero_feature_file_warns(tmp_path, caplog):
    data = write_mmrec_dir(tmp_path / "data", seed=0)
    np.save(data / "image_feat.npy", np.zeros((30, 4), np.float32))
    np.save(data / "text_feat.npy", np.ones((30, 4), np.float32))
    with caplog.at_level("WARNING"):
        load_mmrec_dir(str(data))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("image_feat.npy: every value is 0") for m in messages)
    assert any(m.startswith("text_feat.npy: every row is the same") for m in messages)


def test_parse_users_names_a_bad_value_or_a_missing_file(tmp_path):
    with pytest.raises(MmjaxError, match="--users ²: no such file, and not a comma-separated list"):
        parse_users("²")
    with pytest.raises(MmjaxError, match="got '²'"):
        parse_users("1,²")
    with pytest.raises(MmjaxError, match="--users users.txt: no such file"):
        parse_users("users.txt")
    (tmp_path / "bad.txt").write_text("1\nx\n")
    with pytest.raises(MmjaxError, match=f"{tmp_path}/bad.txt: expected integer user ids.*got 'x'"):
        parse_users(str(tmp_path / "bad.txt"))


def test_wrapped_file_system_errors_are_described_with_their_path():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as inner:
            raise ValueError('RESOURCE_EXHAUSTED: Failed writing: "/w/checkpoints/x": Failed to write 9 bytes: '
                             "No space left on device [os_error_code='28']") from inner
    except ValueError as error:
        message, status = describe_os_error(error, "/w")
    assert message.startswith("/w/checkpoints/x: No space left on device (errno 28); free space") and status == 1
    assert describe_os_error(PermissionError(13, "Permission denied", "/ro/w"), "/w") == \
        ("/ro/w: Permission denied (errno 13)", 2)
    assert describe_os_error(ValueError("not a file-system error"), "/w") is None


# -- the command line: one line and a non-zero exit (2 for bad input)

CLI_SIZE = ["--config.data.synthetic.num_users=300", "--config.data.synthetic.num_items=150"]


def run_cli(workdir, *flags, prelude: str = ""):
    """python -m mmjax.main on configs/lightgcn.py; `prelude` is python run first (a patched write)."""
    argv = ["mmjax.main", "--config=configs/lightgcn.py", f"--workdir={workdir}", *CLI_SIZE, *flags]
    code = "\n".join([prelude, "import sys", f"sys.argv = {argv!r}", "from absl import app", "from mmjax import main",
                      "app.run(main.main)"])
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def one_error_line(proc, status: int) -> str:
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_cli_refusals_are_one_line(tmp_path):
    workdir = tmp_path / "run"
    assert run_cli(workdir, "--config.train.num_epochs=3").returncode == 0
    line = one_error_line(run_cli(workdir, "--mode=eval", "--config.model.n_layers=2"), 2)
    assert "config.model.n_layers (1 vs 2)" in line and not (workdir / "eval.json").exists()
    assert "²" in one_error_line(run_cli(workdir, "--mode=recommend", "--users=²"), 2)
    assert "holds checkpoints of another run" in one_error_line(
        run_cli(workdir, "--config.train.num_epochs=3", "--config.train.learning_rate=0.5"), 2)
    for step in steps(workdir, "best"):
        truncate(workdir / "checkpoints" / "best" / str(step) / "params")
    assert "is corrupt" in one_error_line(run_cli(workdir, "--mode=eval"), 2)
    line = one_error_line(run_cli(tmp_path / "diverged", "--config.train.batch_size=100000",
                                  "--config.train.learning_rate=1e30"), 1)
    assert "non-finitely" in line and "no checkpoint was saved" in line
    # a step size beyond float32: the one step's loss is finite, the parameters it leaves are not
    line = one_error_line(run_cli(tmp_path / "diverged_params", "--config.train.batch_size=100000",
                                  "--config.train.learning_rate=1e39"), 1)
    assert "updated parameters hold NaN or inf" in line and "no checkpoint was saved" in line


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at `path` (True), or False where this process may not mount one."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True).returncode == 0 if shutil.which("mount") else False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def patched_write_failure(workdir: Path, code: int, after_epochs: int = 0) -> str:
    """Python run before main: file writes under `workdir` fail with errno `code` (after some epochs)."""
    return f"""
import builtins, errno, os
from mmjax.train import report
_real_open, _real_mkdir, _root = builtins.open, os.mkdir, {str(workdir)!r}
def _fail(path):
    raise OSError({code}, os.strerror({code}), path)
def _mkdir(path, *args, **kwargs):
    if {after_epochs} == 0 and str(path).startswith(_root):
        _fail(str(path))
    return _real_mkdir(path, *args, **kwargs)
os.mkdir = _mkdir
_epoch = report.RunWriter.epoch
def _epoch_then_full(self, record):
    if {after_epochs} and record["epoch"] >= {after_epochs}:
        _fail(self.metrics_path)
    return _epoch(self, record)
report.RunWriter.epoch = _epoch_then_full
"""


def test_a_read_only_workdir_is_one_line_exit_2(tmp_path):
    with tmpfs(tmp_path / "ro", "size=1m,ro") as mounted:
        workdir = tmp_path / "ro" / "run"
        prelude = "" if mounted else patched_write_failure(workdir, 30)
        line = one_error_line(run_cli(workdir, "--config.train.num_epochs=2", prelude=prelude), 2)
    assert line == f"error: {workdir}: Read-only file system (errno 30)"


def test_a_full_disk_is_one_line_and_the_run_resumes_identically_once_space_is_freed(tmp_path):
    epochs = ["--config.train.num_epochs=8", "--config.train.learning_rate=0.01"]
    reference = load_config_file(os.path.join(ROOT, "configs", "lightgcn.py"))
    reference = with_overrides(reference, {"data.synthetic.num_users": 300, "data.synthetic.num_items": 150,
                                           "train.num_epochs": 8, "train.learning_rate": 0.01})
    expected = train_and_evaluate(reference, str(tmp_path / "reference"))
    with tmpfs(tmp_path / "small", "size=900k") as mounted:
        workdir = tmp_path / "small" / "run"
        prelude = "" if mounted else patched_write_failure(workdir, 28, after_epochs=3)
        line = one_error_line(run_cli(workdir, *epochs, prelude=prelude), 1)
        assert "No space left on device (errno 28); free space and run the same command again" in line
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(tmp_path / "small")], check=True)
        resumed = run_cli(workdir, *epochs)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        results = json.loads((workdir / "results.json").read_text())
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert results[key] == expected[key], key
