"""Hyper-parameter search (experiments/tune.py): chosen on valid only, pruned, resumable, refusing bad input."""

import json

import optuna
import pytest

from experiments import tune

SPACE = "train.learning_rate=loguniform(1e-4,1e-1);model.reg_weight=choice(0.0,0.001)"
TINY = ["--set", "train.num_epochs=4", "--set", "data.synthetic.num_users=100", "--set",
        "data.synthetic.num_items=60", "--set", "train.batch_size=256"]


def search(root, *extra, name="t"):
    return tune.main(["--config=configs/bpr.py", f"--space={SPACE}", "--seeds=1,2", f"--name={name}",
                      "--prune-after=1", "--warmup=1", f"--results-root={root / 'results'}",
                      f"--runs-root={root / 'runs'}", *TINY, *extra])


def trials(root, name="t"):
    return json.loads((root / "results" / name / "trials.json").read_text())["trials"]


def outcomes(rows):
    """(state, params, valid) of the trials that ran to an outcome, in order."""
    return [(r["state"], r["params"], r["valid"]) for r in rows if r["state"] != "INTERRUPTED"]


def test_search_chooses_on_valid_and_computes_test_only_for_the_chosen_config(tmp_path):
    assert search(tmp_path, "--trials=3") == 0
    rows = trials(tmp_path)
    assert len(rows) == 3 and rows[0]["state"] == "COMPLETE"
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best = json.loads((tmp_path / "results" / "t" / "best.json").read_text())
    assert best["valid"] == max(r["valid"] for r in complete)
    assert "--config.train.seed=1" in best["command"]
    for workdir in (tmp_path / "runs" / "t" / "trials").iterdir():  # trials never evaluate test
        for line in (workdir / "metrics.jsonl").read_text().splitlines():
            assert "test" not in json.loads(line)
        if (workdir / "results.json").exists():
            assert json.loads((workdir / "results.json").read_text())["test"] == {}
    finals = sorted((tmp_path / "results" / "t").glob("tuned_seed*.json"))
    assert [p.name for p in finals] == ["tuned_seed1.json", "tuned_seed2.json"]
    for path in finals:
        final = json.loads(path.read_text())
        assert final["test"]["recall@20"] > 0
        assert {k: final["config"][k.split(".")[0]][k.split(".")[1]] for k in best["overrides"]} == best["overrides"]
    assert "| tuned | 1,2 |" in (tmp_path / "results" / "t" / "table.md").read_text()
    assert (tmp_path / "results" / "t" / "history.png").stat().st_size > 0


def test_a_killed_search_resumes_to_the_trials_an_uninterrupted_one_runs(tmp_path, monkeypatch):
    assert search(tmp_path / "a", "--trials=4", "--no-final") == 0
    uninterrupted = outcomes(trials(tmp_path / "a"))
    assert {state for state, _, _ in uninterrupted} == {"COMPLETE", "PRUNED"}  # the pruner did prune

    calls = {"n": 0}
    real_report = optuna.trial.Trial.report

    def killed_in_trial_2(self, value, step):
        real_report(self, value, step)
        if self.number == 2 and step == 1:
            calls["n"] += 1
            raise KeyboardInterrupt  # as a kill after epoch 1 was checkpointed
    monkeypatch.setattr(optuna.trial.Trial, "report", killed_in_trial_2)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "b", "--trials=4", "--no-final")
    monkeypatch.undo()
    assert calls["n"] == 1
    assert search(tmp_path / "b", "--trials=4", "--no-final") == 0
    resumed = trials(tmp_path / "b")
    assert [r["state"] for r in resumed].count("INTERRUPTED") == 1
    assert outcomes(resumed) == uninterrupted


def test_bad_spaces_fields_and_a_changed_setup_are_one_line_errors(tmp_path, capsys):
    base = ["--config=configs/bpr.py", "--trials=1", f"--results-root={tmp_path}", f"--runs-root={tmp_path}", *TINY]
    for space, expected in [("train.learning_rate=normal(0,1)", "with kind in ('uniform', 'loguniform', 'int', 'choice')"),
                            ("train.learning_rate", "expected 'field=kind(args)'"),
                            ("train.learning_rate=loguniform(0,1)", "loguniform(lo, hi) needs numbers lo < hi > 0"),
                            ("train.learning_rat=uniform(0.1,0.2)", "did you mean 'learning_rate'"),
                            ("model.modalities=choice(('image',),('text',))", "each None, a bool, a number")]:
        assert tune.main([*base, f"--space={space}"]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1
    assert search(tmp_path, "--trials=1", "--no-final", name="s") == 0
    assert search(tmp_path, "--trials=2", "--no-final", "--set", "train.num_epochs=5", name="s") == 2
    err = capsys.readouterr().err.strip()
    assert "started with another setup" in err and "train.num_epochs" in err
