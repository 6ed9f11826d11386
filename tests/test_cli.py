"""The command line end to end: a synthetic run's outputs, and bad input as a one-line error, exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "userID\titemID\trating\ttimestamp\tx_label\n"


def run_main(workdir, *overrides, config="configs/bpr.py"):
    command = [sys.executable, "-m", "mmjax.main", f"--config={config}", f"--workdir={workdir}", *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def write_dir(path, inter_text, features=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "toy.inter").write_text(inter_text)
    for name, array in (features or {}).items():
        np.save(path / f"{name}_feat.npy", array)
    return path


def good_rows():
    rows = []
    for user in range(4):
        for item in range(5):
            rows.append(f"{user}\t{(user + item) % 6}\t5\t0\t{0 if item < 3 else item - 2}\n")
    return rows


def test_synthetic_run_writes_metrics_results_and_plot(tmp_path):
    proc = run_main(tmp_path, "--config.train.num_epochs=3", "--config.data.synthetic.num_users=200",
                    "--config.data.synthetic.num_items=100", config="configs/lightgcn.py")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    results = json.loads((tmp_path / "results.json").read_text())
    for key in ("model", "dataset", "best_epoch", "valid", "test", "seconds_per_epoch", "dataset_checksum",
                "commit", "command", "seed"):
        assert key in results, key
    assert results["model"] == "lightgcn" and results["dataset"] == "synthetic"
    assert set(results["test"]) >= {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "map")
                                    for k in (5, 10, 20, 50)}
    assert 0 <= results["best_epoch"] <= 2
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert "epoch    2" in proc.stderr  # progress on the terminal
    assert "3/3 epochs, at most" in proc.stderr and "metrics at the best epoch" in proc.stderr
    assert "Unable to initialize backend" not in proc.stderr  # no TPU probe noise
    assert results["command"].startswith(f"{sys.executable} -m mmjax.main --config=configs/lightgcn.py")
    log = (tmp_path / "mmjax.log").read_text()
    assert "epoch    2" in log and "recall@50" in log  # the log file holds the end-of-run table too


def test_main_job_magnet_runs_on_the_synthetic_default(tmp_path):
    """The README's main job (configs/magnet.py, no data dir), shortened: routing is logged every epoch."""
    proc = run_main(tmp_path, "--config.train.num_epochs=3", "--config.data.synthetic.num_users=200",
                    "--config.data.synthetic.num_items=100", "--config.model.knn_k=5", config="configs/magnet.py")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "magnet" and results["epochs_run"] == 3
    assert "entropy" in proc.stderr and "stage 1 rho 0.00" in proc.stderr


BAD_INPUTS = {
    "missing directory": (lambda p: p / "nope", "nope"),
    "missing column": (lambda p: write_dir(p / "d", "userID\titem\n0\t1\n"), "itemID"),
    "x_label split without the column": (lambda p: write_dir(p / "d", "userID\titemID\n0\t1\n"), "x_label"),
    "negative id": (lambda p: write_dir(p / "d", HEADER + "".join(good_rows()) + "-1\t2\t5\t0\t0\n"), "line"),
    "non-integer id": (lambda p: write_dir(p / "d", HEADER + "".join(good_rows()) + "0\tabc\t5\t0\t0\n"), "line"),
    "empty train split": (lambda p: write_dir(p / "d", HEADER + "0\t1\t5\t0\t1\n1\t2\t5\t0\t2\n"), "train"),
    "nan feature": (lambda p: write_dir(p / "d", HEADER + "".join(good_rows()),
                                        {"image": np.full((6, 4), np.nan, np.float32)}), "image_feat.npy"),
    "item beyond feature rows": (lambda p: write_dir(p / "d", HEADER + "".join(good_rows()),
                                                     {"image": np.ones((3, 4), np.float32)}), "image_feat.npy"),
    "feature row mismatch": (lambda p: write_dir(p / "d", HEADER + "".join(good_rows()),
                                                 {"image": np.ones((6, 4), np.float32),
                                                  "text": np.ones((7, 4), np.float32)}), "_feat.npy"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2(tmp_path, case):
    make, expected_word = BAD_INPUTS[case]
    data_dir = make(tmp_path)
    split = ["--config.data.split=x_label"] if "x_label split" in case else []
    proc = run_main(tmp_path / "run", f"--config.data.dir={data_dir}", *split)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert expected_word in errors[0]


@pytest.mark.parametrize("override,field", [("--config.train.batch_size=0", "train.batch_size"),
                                            ("--config.model.name=nope", "model.name"),
                                            ("--config.train.learning_rate=-1.0", "train.learning_rate")])
def test_bad_config_value_is_one_line_exit_2(tmp_path, override, field):
    proc = run_main(tmp_path, override, "--config.data.synthetic.num_users=50",
                    "--config.data.synthetic.num_items=40")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert field in proc.stderr


@pytest.mark.parametrize("args,expected", [
    (["--config.train.num_epoch=3"], "--config.train.num_epoch: config has no field 'num_epoch'; did you mean "
                                     "'num_epochs'?"),
    (["--config.trian.num_epochs=3"], "did you mean 'train'?"),
    (["--config.train.num_epochs=abc"], "--config.train.num_epochs=abc"),
    (["--no_such_flag=1"], "no_such_flag"),
])
def test_command_line_mistakes_are_one_line_exit_2(tmp_path, args, expected):
    proc = run_main(tmp_path, *args)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing ran


def test_missing_or_broken_config_file_is_one_line_exit_2(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    for config, expected in (("configs/nosuch.py", "--config: configs/nosuch.py: file not found"),
                             (str(broken), f"{broken}: get_config() failed: SyntaxError")):
        proc = run_main(tmp_path / "run", config=config)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr[-2000:]
        assert expected in proc.stderr


def test_help_lists_the_config_fields_with_their_values(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmjax.main", "--config=configs/sasrec.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--workdir" in proc.stdout and "Config fields of configs/sasrec.py" in proc.stdout
    assert "--config.train.num_epochs" in proc.stdout and "--config.model.max_len" in proc.stdout


def test_a_second_run_on_a_busy_workdir_is_refused_and_a_stale_lock_does_not_block(tmp_path):
    """While a run holds the workdir (here: this process, through the same lock) another is refused in one
    line, exit 2, writing nothing; a lock file left by a killed run holds no lock, so training proceeds."""
    from mmjax.train.workdir_lock import LOCK_FILE, workdir_lock

    small = ["--config.train.num_epochs=2", "--config.data.synthetic.num_users=60",
             "--config.data.synthetic.num_items=60"]
    with workdir_lock(str(tmp_path)):
        proc = run_main(tmp_path, *small)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another run is training in this workdir" in errors[0]
    assert f"pid {os.getpid()}" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "metrics.jsonl").exists()
    (tmp_path / LOCK_FILE).write_text('{"pid": 999999, "host": "gone", "started": "then", "command": "x"}')
    proc = run_main(tmp_path, *small)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_sparse_ids_are_remapped_and_recommendations_name_the_dataset_ids(tmp_path):
    """Two users with ids 7 and 2000000000 (dense storage would need two billion rows) train in seconds;
    an i_id_mapping.csv names the items; recommendations.csv and the workdir's id maps carry both."""
    rows = [f"{user}\t{item}\t{label}\n" for user, first in ((7, 0), (2000000000, 30)) for item, label in
            zip(range(first, first + 20), [0] * 18 + [1, 2])]
    data = write_dir(tmp_path / "d", "userID\titemID\tx_label\n" + "".join(rows))
    (data / "i_id_mapping.csv").write_text("asin\titemID\n" + "".join(f"A{i:03d}\t{i}\n" for i in range(60)))
    common = ["--config.train.num_epochs=2", f"--config.data.dir={data}", "--config.eval.ks=(5,)",
              "--config.eval.monitor=recall@5", "--config.recommend.k=3"]
    proc = run_main(tmp_path / "run", *common)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "userID holds 2 distinct ids up to 2000000000; remapped to 0..1" in proc.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["num_users"] == 2
    assert (tmp_path / "run" / "user_ids.tsv").read_text() == "user_id\tuser\n0\t7\n1\t2000000000\n"
    assert (tmp_path / "run" / "item_ids.tsv").read_text().splitlines()[1:3] == ["0\tA000", "1\tA001"]
    proc = run_main(tmp_path / "run", *common, "--mode=recommend")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "run" / "recommendations.csv").read_text().splitlines()
    assert lines[0] == "user_id,rank,item_id,score,user,item" and len(lines) == 1 + 2 * 3
    for line in lines[1:]:
        user, _, item, _, user_name, item_name = line.split(",")
        assert user_name == ("7", "2000000000")[int(user)] and item_name == f"A{int(item):03d}"


def test_a_malformed_id_map_is_one_line_exit_2(tmp_path):
    data = write_dir(tmp_path / "d", HEADER + "".join(good_rows()))
    (data / "u_id_mapping.csv").write_text("user_id\tuserID\nA\t0\nB\t0\n")
    proc = run_main(tmp_path / "run", f"--config.data.dir={data}")
    assert proc.returncode == 2 and "u_id_mapping.csv line 3: userID 0 is mapped a second time" in proc.stderr
