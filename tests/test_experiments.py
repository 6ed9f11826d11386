"""The ablation runner, the comparison table and the run report, on tiny synthetic runs."""

import datetime
import json
import os

import pytest

from experiments import ablate
from mmjax.config_files import load_config_file, with_overrides
from mmjax.errors import ConfigError
from mmjax.report import report
from mmjax.train.train import train_and_evaluate

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--set", "train.num_epochs=2", "--set", "data.synthetic.num_users=100",
        "--set", "data.synthetic.num_items=60", "--set", "train.batch_size=256"]


def test_ablation_runner_writes_runs_table_and_chart_and_reuses_runs(tmp_path):
    args = ["--config=configs/lightgcn.py", "--grid=model.n_layers=1,2", "--seeds=1,2", "--name=tiny",
            f"--results-root={tmp_path / 'results'}", f"--runs-root={tmp_path / 'runs'}", *TINY]
    assert ablate.main(args) == 0
    folder = tmp_path / "results" / "tiny"
    assert sorted(p.name for p in folder.glob("*_seed*.json")) == [
        "n_layers=1_seed1.json", "n_layers=1_seed2.json", "n_layers=2_seed1.json", "n_layers=2_seed2.json"]
    summary = json.loads((folder / "summary.json").read_text())
    rows = {row["variant"]: row for row in summary["rows"]}
    assert set(rows) == {"n_layers=1", "n_layers=2"}
    per_seed = [rows["n_layers=2"]["per_seed_test"][s]["recall@20"] for s in ("1", "2")]
    assert rows["n_layers=2"]["recall@20"]["mean"] == pytest.approx(sum(per_seed) / 2)
    assert rows["n_layers=2"]["recall@20"]["std"] > 0  # two seeds differ
    table = (folder / "table.md").read_text()
    assert "| n_layers=1 |" in table and "±" in table
    assert (folder / "chart.png").stat().st_size > 0
    stamp = (folder / "n_layers=1_seed1.json").stat().st_mtime
    assert ablate.main(args) == 0  # finished runs are read back, not trained again
    assert (folder / "n_layers=1_seed1.json").stat().st_mtime == stamp
    # --finished-only tabulates what exists (per-row seeds) and trains nothing
    (folder / "n_layers=2_seed2.json").unlink()
    partial = [a.replace("model.n_layers=1,2", "model.n_layers=1,2,3") for a in args] + ["--finished-only"]
    assert ablate.main(partial) == 0
    table = (folder / "table.md").read_text()
    assert "| n_layers=1 | 1,2 |" in table and "| n_layers=2 | 1 |" in table
    assert "Not run yet: n_layers=3." in table
    assert not (folder / "n_layers=2_seed2.json").exists() and not (folder / "n_layers=3_seed1.json").exists()
    # --variant trains only the named variants and tabulates every finished one
    assert ablate.main([a for a in partial if a != "--finished-only"] + ["--variant", "n_layers=2"]) == 0
    assert (folder / "n_layers=2_seed2.json").exists() and not (folder / "n_layers=3_seed1.json").exists()
    assert "| n_layers=2 | 1,2 |" in (folder / "table.md").read_text()
    assert ablate.main(args + ["--variant", "n_layers=9"]) == 2


def test_ablation_runner_never_reuses_a_run_of_another_config_or_dataset(tmp_path, capsys, caplog):
    """The same --name with another --set (or other data) is refused in one line naming the field and the
    JSON; --rerun trains it again; the same config is reused, and the log says so."""
    args = ["--config=configs/lightgcn.py", "--grid=model.n_layers=1", "--seeds=1", "--name=tiny",
            f"--results-root={tmp_path / 'results'}", f"--runs-root={tmp_path / 'runs'}", *TINY]
    assert ablate.main(args) == 0
    path = tmp_path / "results" / "tiny" / "n_layers=1_seed1.json"
    with caplog.at_level("INFO"):
        assert ablate.main(args + ["--finished-only"]) == 0
    assert any(f"reused {path}" in r.getMessage() for r in caplog.records)
    capsys.readouterr()
    longer = args + ["--set", "train.num_epochs=3"]
    for extra in ([], ["--finished-only"]):
        assert ablate.main(longer + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err
        assert "train.num_epochs (2 vs 3)" in err and "--rerun" in err
    assert ablate.main(args + ["--set", "data.synthetic.num_users=81"]) == 2
    assert "data.synthetic.num_users (100 vs 81)" in capsys.readouterr().err
    assert json.loads(path.read_text())["config"]["train"]["num_epochs"] == 2  # the refused run is kept
    assert ablate.main(longer + ["--rerun"]) == 0
    assert json.loads(path.read_text())["config"]["train"]["num_epochs"] == 3
    assert ablate.main(longer) == 0  # now the same config: reused


def test_finished_run_check_fills_fields_a_record_predates_and_compares_the_data(tmp_path):
    """A field added to the config after a run was recorded takes the config file's default; a dataset with
    the same config but other contents (checksum) is refused."""
    base = load_config_file(os.path.join(ROOT, "configs", "lightgcn.py"))
    base.data.synthetic.update(num_users=80, num_items=50)
    defaults = ablate.json_tree(load_config_file(os.path.join(ROOT, "configs", "lightgcn.py")).to_dict())
    recorded = ablate.json_tree(base.to_dict())
    del recorded["eval"]["ties"]  # as a record written before eval.ties existed
    path = tmp_path / "run.json"
    checksum = ablate.dataset_checksum(base.data)
    path.write_text(json.dumps({"config": recorded, "dataset_checksum": checksum}))
    assert ablate.finished_run(str(path), base, defaults)["dataset_checksum"] == checksum
    assert ablate.finished_run(str(tmp_path / "none.json"), base, defaults) is None
    with pytest.raises(ConfigError, match="eval.ties"):
        ablate.finished_run(str(path), with_overrides(base, {"eval.ties": "last"}), defaults)
    path.write_text(json.dumps({"config": recorded, "dataset_checksum": "0" * 64}))
    with pytest.raises(ConfigError, match="dataset_checksum"):
        ablate.finished_run(str(path), base, defaults)


@pytest.mark.parametrize("model, count", [("rlmultimodalrec", 13), ("magnet", 13)])
def test_ablation_grid_file_variants_all_apply(model, count):
    base = load_config_file(os.path.join(ROOT, "configs", f"{model}.py"))
    variants = ablate.load_grid(os.path.join(ROOT, "experiments", "grids", f"{model}.py"))
    assert len(variants) == count
    for _, overrides in variants:
        with_overrides(base, overrides)  # every field exists


def test_ablation_bad_grid_is_an_error(tmp_path, capsys):
    code = ablate.main(["--config=configs/lightgcn.py", "--grid=model.n_layerz=1,2", "--seeds=1",
                        f"--results-root={tmp_path}", f"--runs-root={tmp_path}", *TINY])
    assert code == 2 and "model.n_layerz" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="expected 'field=v1,v2'"):
        ablate.load_grid("model.n_layers")


def test_reported_results_rows_are_well_formed():
    rows = ablate.reported_for("tiktok")
    assert {row["model"] for row in rows} >= {"LightGCN", "FREEDOM", "VBPR", "BPR-MF"}
    for row in rows:
        assert row["source"] and 0 < row["metrics"]["recall@20"] < 1
    split = next(row["dataset_checksum"] for row in rows if "dataset_checksum" in row)
    on_our_split = ablate.reported_for("tiktok", split)
    assert {row["model"] for row in on_our_split} >= {"LightGCN", "FREEDOM", "VBPR", "BPR-MF"}
    assert ablate.reported_for("tiktok", "checksum of a re-split") == []  # MMRec ran on the original split only


def test_report_draws_the_gate_distribution(tmp_path):
    config = helpers.small_config(users=100, items=60, num_epochs=2)
    config.model.name = "rlmultimodalrec"
    config.model.update(dict(fusion="gate", gate="vector", item_init="id+content", content_dropout=0.0,
                             proj_weight_decay=0.0, reg_weight=1e-4, feature_norm="l2",
                             content_scale_init=0.0))
    train_and_evaluate(config, str(tmp_path))
    summary = report(str(tmp_path))
    assert (tmp_path / "gate_histogram.png").stat().st_size > 0
    means = [summary["gate"][m]["mean"] for m in ("image", "text")]
    assert sum(means) == pytest.approx(1.0, abs=1e-5)
    assert summary["content_scale"] != 0.0  # learned from its initial 0
    assert json.loads((tmp_path / "report.json").read_text())["best_epoch"] == summary["best_epoch"]


def test_resplit_keeps_each_users_split_sizes_and_draws_new_members(tmp_path):
    import numpy as np

    from experiments.resplit import resplit_labels
    from mmjax.data import load_mmrec_dir

    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 600)
    labels = rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 1, 2], 600)
    new = resplit_labels(users, labels, np.random.default_rng(1))
    for user in range(30):
        assert sorted(new[users == user]) == sorted(labels[users == user])
    assert np.mean(new != labels) > 0.1
    assert np.array_equal(resplit_labels(users, labels, np.random.default_rng(1)), new)  # seeded

    source = tmp_path / "src"
    source.mkdir()
    items = np.array([np.sum(users[:row] == user) for row, user in enumerate(users)]) % 40  # no duplicates
    lines = ["userID\titemID\trating\tx_label"] + [f"{u}\t{i}\t1\t{x}" for u, i, x in zip(users, items, labels)]
    (source / "toy.inter").write_text("\n".join(lines) + "\n")
    np.save(source / "image_feat.npy", rng.normal(size=(40, 4)).astype(np.float32))
    import subprocess
    import sys
    out = tmp_path / "out"
    subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "resplit.py"), "--data", str(source),
                    "--out", str(out), "--seed", "3"], check=True, cwd=ROOT, capture_output=True)
    original, resplit = load_mmrec_dir(source), load_mmrec_dir(out)
    for split in ("train", "valid", "test"):
        count = lambda d: np.bincount(getattr(d, split)[:, 0], minlength=30)
        assert np.array_equal(count(original), count(resplit))
    assert np.array_equal(original.features["image"], resplit.features["image"])


def test_startup_benchmark_reads_the_phases_from_the_log_stamps():
    from experiments import bench_startup

    launched = datetime.datetime(2026, 12, 6, 13, 54, 20).timestamp()
    stderr = "\n".join(["WARNING: no stamp here",
                        "I1206 13:54:21.500000 1 mmrec.py:1] loaded tiktok",
                        "I1206 13:54:22.000000 1 dataset.py:1] dataset 'tiktok' (...): 9319 users",
                        "I1206 13:54:25.250000 1 loop.py:1] training lightgcn on tiktok: 35 steps per epoch",
                        "I1206 13:54:29.000000 1 loop.py:1] epoch    0 | loss 0.69 | valid recall@20 0.01"])
    assert bench_startup.phases(stderr, launched) == {"first_log_line": 1.5, "data_loaded": 2.0,
                                                      "training_line": 5.25, "first_epoch_line": 9.0}


@pytest.mark.parametrize("tool", ["experiments.ablate", "experiments.compare", "experiments.bench_startup",
                                  "mmjax.report"])
def test_tools_run_from_any_directory(tmp_path, tool):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", tool, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), proc.stderr[-2000:]


def test_compare_tabulates_the_users_own_workdirs_and_says_when_there_is_nothing(tmp_path, capsys):
    import subprocess
    import sys

    for seed in (1, 2):
        train_and_evaluate(helpers.small_config("bpr", users=80, items=60, num_epochs=2, seed=seed),
                           str(tmp_path / f"bpr{seed}"))
    out = tmp_path / "mine.md"
    proc = subprocess.run([sys.executable, "-m", "experiments.compare", "--runs", str(tmp_path / "bpr1"),
                           str(tmp_path / "bpr2"), "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| BPR-MF | 1,2 |" in out.read_text() and "`synthetic`" in out.read_text()
    proc = subprocess.run([sys.executable, "-m", "experiments.compare", "--dataset", "synthetic"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no recorded runs on 'synthetic'" in proc.stderr and "--runs" in proc.stderr


def test_side_by_side_benchmark_skips_without_mmrec_and_checks_its_flags(capsys):
    from experiments import bench_vs_mmrec

    assert bench_vs_mmrec.later_epochs_median([9.0, 1.0, 3.0, 2.0]) == 2.0  # the compiling epoch left out
    with pytest.raises(ValueError, match="two epochs"):
        bench_vs_mmrec.later_epochs_median([1.0])
    assert bench_vs_mmrec.main([]) == 0
    assert "skipped, no MMRec checkout" in capsys.readouterr().err
    assert bench_vs_mmrec.main(["--mmrec=/nowhere", "--cases=sasrec:baby"]) == 2
    assert "--cases" in capsys.readouterr().err
    assert bench_vs_mmrec.main(["--mmrec=/nowhere", "--epochs=1"]) == 2


def test_step_profile_puts_every_timed_op_of_a_graph_model_in_a_part(capsys):
    from experiments import profile_step

    hlo = profile_step.parse_hlo(
        '  %fusion.1 = f32[8,4]{1,0} fusion(f32[8,2]{1,0} %a, f32[2,4]{1,0} %b), kind=kLoop, calls=%c, '
        'metadata={op_name="jit(f)/while/body/loss_and_gradient/transpose(jvp(propagation))/dot_general"}\n'
        '  %a = f32[8,2]{1,0} parameter(0)\n  %b = f32[2,4]{1,0} parameter(1)\n'
        '  %t = (f32[3]{0}, s32[]) tuple(%a, %b)')
    assert hlo["fusion.1"]["bytes"] == 4 * (32 + 16 + 8) and profile_step.part_of(hlo["fusion.1"]) == "propagation"
    assert hlo["t"]["out"] == 4 * 3 + 4
    assert profile_step.main(["--model=lightgcn", "--data=synthetic", "--epochs=1"]) == 0
    out = json.loads(capsys.readouterr().out)["profile"]
    parts = out["parts"]
    assert set(parts) == set(profile_step.PARTS)
    assert parts["propagation"]["ops"] >= 2 and parts["propagation"]["csr_products_timed_alone"] >= 1
    assert parts["optimiser update"]["ops"] > 0 and parts["propagation"]["backward_ms"] > 0
    assert out["step_ms_op_sum"] == pytest.approx(sum(p["ms_per_step"] for p in parts.values()), abs=0.01)
    assert out["floor_ms_per_step"] > 0 and out["top_ops"]
    assert profile_step.main(["--epochs=0"]) == 2
