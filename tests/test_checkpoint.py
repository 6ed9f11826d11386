"""Checkpoints: SIGKILL and resume ends like an uninterrupted run; corrupt latest falls back; NaN stops."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mmjax.errors import MmjaxError
from mmjax.train import loop
from mmjax.train import train as train_module
from mmjax.train.state import EarlyStopping, RunProgress
from mmjax.train.topk import graph_topk_task
from mmjax.train.train import train_and_evaluate

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEDIUM = ["--config.data.synthetic.num_users=1500", "--config.data.synthetic.num_items=800",
          "--config.train.batch_size=512", "--config.train.num_epochs=30", "--config.train.patience=100"]


def cli(workdir) -> list[str]:
    return [sys.executable, "-m", "mmjax.main", "--config=configs/lightgcn.py", f"--workdir={workdir}", *MEDIUM]


def read_run(workdir) -> tuple[dict, list[dict]]:
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return results, records


def same_outcome(a, b) -> None:
    (results_a, records_a), (results_b, records_b) = a, b
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert results_a[key] == results_b[key], key
    assert [r["epoch"] for r in records_a] == [r["epoch"] for r in records_b]
    assert [r["loss"] for r in records_a] == [r["loss"] for r in records_b]
    assert [r["valid"] for r in records_a] == [r["valid"] for r in records_b]


def test_sigkill_then_same_command_resumes_to_the_uninterrupted_result(tmp_path):
    reference = subprocess.run(cli(tmp_path / "reference"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]

    workdir = tmp_path / "killed"
    proc = subprocess.Popen(cli(workdir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 8:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    assert not (workdir / "results.json").exists()

    resumed = subprocess.run(cli(workdir), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    same_outcome(read_run(workdir), read_run(tmp_path / "reference"))


def small_config(**train):
    return helpers.small_config(**{"learning_rate": 0.01, **train})


def test_corrupt_latest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
    reference = train_and_evaluate(small_config(num_epochs=6), str(tmp_path / "reference"))
    workdir = tmp_path / "run"
    train_and_evaluate(small_config(num_epochs=4), str(workdir))
    latest = workdir / "checkpoints" / "latest"
    assert sorted(int(p.name) for p in latest.iterdir()) == [3, 4]
    for path in (latest / "4" / "state").rglob("*"):  # truncate every array file of the newest step
        if path.is_file():
            path.write_bytes(b"")
    with caplog.at_level("WARNING"):
        resumed = train_and_evaluate(small_config(num_epochs=6), str(workdir))
    assert any("latest/4 is partial or corrupt" in r.getMessage() for r in caplog.records)
    assert any(p.name.startswith("latest-4-") for p in (workdir / "checkpoints" / "corrupt").iterdir())
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert resumed[key] == reference[key], key


def test_unfinished_save_is_ignored(tmp_path):
    reference = train_and_evaluate(small_config(num_epochs=4), str(tmp_path / "reference"))
    workdir = tmp_path / "run"
    train_and_evaluate(small_config(num_epochs=3), str(workdir))
    latest = workdir / "checkpoints" / "latest"
    shutil.copytree(latest / "3", latest / "9.orbax-checkpoint-tmp")  # what a kill during a save leaves
    resumed = train_and_evaluate(small_config(num_epochs=4), str(workdir))
    assert resumed["epochs_run"] == 4 and resumed["test"] == reference["test"]
    assert not (latest / "9.orbax-checkpoint-tmp").exists()


def test_resume_refuses_a_different_config(tmp_path):
    train_and_evaluate(small_config(num_epochs=2), str(tmp_path))
    with pytest.raises(MmjaxError, match="learning_rate"):
        train_and_evaluate(small_config(num_epochs=2, learning_rate=0.5), str(tmp_path))


def test_a_workdir_recorded_before_config_fields_were_added_still_resumes(tmp_path):
    from mmjax.train.checkpoint import ADDED_FIELDS

    train_and_evaluate(small_config(num_epochs=1), str(tmp_path))
    run_json = tmp_path / "checkpoints" / "run.json"
    recorded = json.loads(run_json.read_text())
    for dotted in ADDED_FIELDS:  # as an earlier version recorded it
        section, leaf = dotted.split(".")
        recorded["config"][section].pop(leaf)
    run_json.write_text(json.dumps(recorded))
    assert train_and_evaluate(small_config(num_epochs=2), str(tmp_path))["epochs_run"] == 2
    recorded["config"]["eval"]["ties"] = "last"  # a recorded value other than the old behaviour still differs
    run_json.write_text(json.dumps(recorded))
    with pytest.raises(MmjaxError, match="eval.ties"):
        train_and_evaluate(small_config(num_epochs=3), str(tmp_path))


def test_finished_run_restarted_changes_nothing(tmp_path):
    first = train_and_evaluate(small_config(num_epochs=3), str(tmp_path))
    again = train_and_evaluate(small_config(num_epochs=3), str(tmp_path))
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert again[key] == first[key]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_run_resumed_at_another_commit_says_which_commit_trained_which_epochs(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "git_commit", lambda: "aaaa")
    first = train_and_evaluate(small_config(num_epochs=2), str(tmp_path))
    assert first["commit"] == "aaaa" and first["trained_at"] == [{"commit": "aaaa", "epochs": [0, 1]}]
    monkeypatch.setattr(train_module, "git_commit", lambda: "bbbb")
    reopened = train_and_evaluate(small_config(num_epochs=2), str(tmp_path))  # finished: trains nothing
    assert reopened["commit"] == "bbbb" and reopened["trained_at"] == first["trained_at"]
    extended = train_and_evaluate(small_config(num_epochs=4), str(tmp_path))
    assert extended["trained_at"] == [{"commit": "aaaa", "epochs": [0, 1]}, {"commit": "bbbb", "epochs": [2, 3]}]


def test_non_finite_loss_names_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real_task = graph_topk_task

    def poisoned_task(config, dataset):
        task = real_task(config, dataset)

        def epoch_batches(epoch):
            batches = task.epoch_batches(epoch)
            if epoch == 2:
                batches["weights"][1, 0] = np.nan  # step 1 of epoch 2 meets a NaN
            return batches

        return dataclasses.replace(task, epoch_batches=epoch_batches)

    monkeypatch.setitem(train_module.PROTOCOLS, "graph", poisoned_task)
    with pytest.raises(loop.NonFiniteTrainingError,
                       match=r"loss nan at step 1 of \d+ at epoch 2; nothing of it was saved, kept the last good"):
        train_and_evaluate(small_config(num_epochs=5), str(tmp_path))
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints" / "latest").iterdir()) == [1, 2]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_run_progress_json_round_trip():
    progress = RunProgress(epochs_done=3, stopper=EarlyStopping(best_value=0.5, best_epoch=1, bad_epochs=1),
                           best={"valid": {"recall@20": 0.5}, "test": {"recall@20": 0.4}},
                           records=({"epoch": 0},))
    assert RunProgress.from_json(json.loads(json.dumps(progress.to_json()))) == progress
    assert RunProgress.from_json(json.loads(json.dumps(RunProgress().to_json()))) == RunProgress()
    # a checkpoint written before evaluation views had names kept best_valid / best_test
    legacy = {**progress.to_json(), "best_valid": {"recall@20": 0.5}, "best_test": {"recall@20": 0.4}}
    del legacy["best"]
    assert RunProgress.from_json(legacy) == progress
