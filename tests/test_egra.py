"""EGRA: the phase-1 hand-over, the pretrained item graph, the bi-level alignment weights, resume."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config_files import load_config_file
from mmjax.data import make_synthetic
from mmjax.errors import ConfigError, DataError, MmjaxError
from mmjax.graph import dense_adjacency
from mmjax.models.egra import AlignmentStrength, EntityWeighting, enhanced_behaviour_graph, pretrained_item_edges
from mmjax.train.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"num_users": 120, "num_items": 80}


def small(config_name: str, epochs: int, seed: int = 999, data_seed: int = 0, **model):
    config = load_config_file(os.path.join(ROOT, "configs", f"{config_name}.py"))
    config.data.synthetic.num_users, config.data.synthetic.num_items = SMALL["num_users"], SMALL["num_items"]
    config.data.synthetic.seed = data_seed
    config.train.num_epochs, config.train.batch_size, config.train.seed = epochs, 256, seed
    config.train.progress = "none"
    config.model.knn_k = 5
    config.model.embed_dim = 16
    for key, value in model.items():
        config.model[key] = value
    return config


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("egra") / "mgcn")
    train_and_evaluate(small("mgcn", epochs=2), workdir)
    return workdir


def test_pretrained_item_graph_keeps_the_k_most_similar_other_items():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 6)).astype(np.float32)
    receivers, senders, weights = pretrained_item_edges(vectors, k=4)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    for item in range(30):
        mine = senders[receivers == item]
        assert len(mine) == 4 and item not in mine
        assert set(mine) == set(np.argsort(-cosine[item], kind="stable")[:4])
    assert np.all(weights >= 0) and np.allclose(weights, np.maximum(cosine[receivers, senders], 0), atol=1e-6)
    with pytest.raises(ConfigError, match="model.pretrained_k"):
        pretrained_item_edges(vectors, k=30)


def test_enhanced_graph_adds_the_symmetrised_item_block_to_the_train_graph(phase1):
    from mmjax.train.train import prepare

    config = small("egra", epochs=1, pretrained_workdir=phase1)
    dataset, _ = prepare(config)
    users = dataset.num_users
    dense = dense_adjacency(enhanced_behaviour_graph(config.model, dataset))
    item_block = dense[users:, users:]
    assert np.count_nonzero(item_block) > 0 and np.allclose(item_block, item_block.T)
    assert np.all(np.diag(item_block) == 0)
    assert np.count_nonzero(dense[:users, :users]) == 0  # no user-user edges
    config.model.item_graph = "none"
    assert enhanced_behaviour_graph(config.model, dataset) is None


def test_alignment_strength_ramps_per_step_from_start_to_its_maximum():
    strength = AlignmentStrength(maximum=0.01, start=0.1, ramp_epochs=50)
    schedule = strength.init()
    assert float(schedule["strength"]) == pytest.approx(0.001)
    assert float(strength.at_step(schedule, jnp.asarray(25 * 4 + 2), 4)["strength"]) == pytest.approx(
        0.01 * (0.1 + 0.9 * 25.5 / 50))
    for _ in range(60):
        schedule = strength.update(schedule, {})
    assert int(schedule["epoch"]) == 60 and float(schedule["strength"]) == pytest.approx(0.01)
    assert float(AlignmentStrength(0.01, ramp_epochs=0).at(3.0)) == pytest.approx(0.01)


def test_entity_weights_press_the_worst_aligned_and_average_one():
    weighting = EntityWeighting(mode="poorly_aligned", temperature=0.5, low=0.01, high=100.0)
    degrees = jnp.asarray([0.9, 0.5, 0.0, -0.5, 0.3])
    mask = jnp.asarray([1.0, 1.0, 1.0, 1.0, 0.0])  # the last row is padding
    weights = weighting.weights(degrees, mask, None)
    assert float(jnp.sum(weights * mask) / 4) == pytest.approx(1.0, rel=1e-5)
    assert list(np.argsort(np.asarray(weights[:4]))) == [0, 1, 2, 3]
    opposite = EntityWeighting(mode="well_aligned", temperature=0.5, low=0.01, high=100.0).weights(degrees, mask, None)
    assert list(np.argsort(np.asarray(opposite[:4]))) == [3, 2, 1, 0]
    clipped = EntityWeighting(low=0.5, high=1.5).weights(degrees, mask, None)
    assert float(clipped.min()) >= 0.5 and float(clipped.max()) <= 1.5
    assert np.all(np.asarray(EntityWeighting(mode="uniform").weights(degrees, mask, None)) == 1.0)


def test_phase_two_records_its_hand_over_and_resumes_bit_for_bit(phase1, tmp_path):
    full = train_and_evaluate(small("egra", epochs=3, pretrained_workdir=phase1), str(tmp_path / "full"))
    train_and_evaluate(small("egra", epochs=1, pretrained_workdir=phase1), str(tmp_path / "cut"))
    resumed = train_and_evaluate(small("egra", epochs=3, pretrained_workdir=phase1), str(tmp_path / "cut"))
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert resumed[key] == full[key], key
    with open(tmp_path / "full" / "results.json") as f:
        inputs = json.load(f)["inputs"]["pretrained_items"]
    with open(os.path.join(phase1, "results.json")) as f:
        assert inputs["best_epoch"] == json.load(f)["best_epoch"]
    assert inputs["workdir"] == os.path.abspath(phase1) and inputs["shape"] == [SMALL["num_items"], 16]
    with open(tmp_path / "full" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    strengths = [r["parts"]["strength"] for r in records]
    assert strengths == sorted(strengths) and strengths[0] > 0.001  # grows step by step from λ_0 = 0.1 λ_max
    assert all(r["schedule"]["trained_with"]["epoch"] == i for i, r in enumerate(records))
    assert all(r["parts"]["weight_min"] <= r["parts"]["weight_q50"] <= r["parts"]["weight_max"] for r in records)

    from mmjax.report import report

    summary = report(str(tmp_path / "full"))["alignment"]
    assert os.path.exists(summary["plot"]) and summary["per_epoch"]["strength"] == strengths
    low, median, high = summary["item_weights_quantiles_10_50_90"]
    assert 0.1 <= low <= median <= high <= 5.0


def test_phase_two_refuses_a_retrained_phase_one_and_bad_hand_overs(phase1, tmp_path):
    import shutil

    moving = str(tmp_path / "mgcn")
    shutil.copytree(phase1, moving)
    phase2 = str(tmp_path / "egra")
    train_and_evaluate(small("egra", epochs=1, pretrained_workdir=moving), phase2)
    shutil.rmtree(moving)
    train_and_evaluate(small("mgcn", epochs=1, seed=7), moving)  # phase 1 retrained in place
    with pytest.raises(MmjaxError, match="inputs.pretrained_items"):
        train_and_evaluate(small("egra", epochs=2, pretrained_workdir=moving), phase2)

    with pytest.raises(ConfigError, match="is not a directory"):
        train_and_evaluate(small("egra", epochs=1, pretrained_workdir=str(tmp_path / "nosuch")), str(tmp_path / "a"))
    os.makedirs(tmp_path / "unfinished")
    with pytest.raises(ConfigError, match="has no results.json"):
        train_and_evaluate(small("egra", epochs=1, pretrained_workdir=str(tmp_path / "unfinished")),
                           str(tmp_path / "b"))
    with pytest.raises(DataError, match="was trained on dataset"):
        train_and_evaluate(small("egra", epochs=1, data_seed=1, pretrained_workdir=phase1), str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="dimension 16, model.pretrained_dim expects 64"):
        train_and_evaluate(small("egra", epochs=1, pretrained_workdir=phase1, pretrained_dim=64),
                           str(tmp_path / "d"))
    with pytest.raises(ConfigError, match="model.pretrained_workdir: EGRA's item graph"):
        train_and_evaluate(small("egra", epochs=1), str(tmp_path / "e"))
    with pytest.raises(ConfigError, match="model.entity_weighting"):
        train_and_evaluate(small("egra", epochs=1, item_graph="none", entity_weighting="both"), str(tmp_path / "f"))


def test_dataset_refuses_pretrained_vectors_of_another_item_count():
    import dataclasses

    from mmjax.data.pretrained import PretrainedItems

    dataset = make_synthetic(num_users=50, num_items=30, latent_dim=4, mean_interactions=6.0, seed=0)
    items = PretrainedItems(vectors=np.ones((29, 4)), workdir="/runs/p1", model="mgcn", best_epoch=0)
    with pytest.raises(DataError, match="cover 29 items"):
        dataclasses.replace(dataset, pretrained_items=items)
    with pytest.raises(DataError, match="non-finite"):
        PretrainedItems(vectors=np.full((30, 4), np.nan), workdir="/runs/p1", model="mgcn", best_epoch=0)


def test_ablation_runner_trains_each_seeds_phase_one_before_its_phase_two(tmp_path):
    from experiments import ablate

    grid = tmp_path / "grid.py"
    grid.write_text("def get_grid():\n    return [('MGCN', {'config': 'configs/mgcn.py'}),\n"
                    "            ('EGRA', {'model.pretrained_workdir': '{runs}/MGCN_seed{seed}'})]\n")
    sets = ["data.synthetic.num_users=120", "data.synthetic.num_items=80", "train.num_epochs=1",
            "train.batch_size=256", "model.knn_k=5", "model.embed_dim=16", "train.progress=none"]
    argv = ["--config", os.path.join(ROOT, "configs", "egra.py"), "--grid", str(grid), "--seeds", "3",
            "--name", "egra", "--results-root", str(tmp_path / "results"), "--runs-root", str(tmp_path / "runs")]
    for item in sets:
        argv += ["--set", item]
    assert ablate.main(argv) == 0
    with open(tmp_path / "results" / "egra" / "EGRA_seed3.json") as f:
        egra = json.load(f)
    assert egra["inputs"]["pretrained_items"]["workdir"] == str(tmp_path / "runs" / "egra" / "MGCN_seed3")
    assert egra["config"]["model"]["pretrained_workdir"] == str(tmp_path / "runs" / "egra" / "MGCN_seed3")

    # On a machine that kept the result JSONs but not the run folders, a phase 2 still to train (here a second
    # EGRA row) gets its phase 1 trained again into the folder it reads, not a missing-run error.
    import shutil

    shutil.rmtree(tmp_path / "runs")
    grid.write_text(grid.read_text().replace("]\n", ",\n            ('EGRA again', {'model.pretrained_workdir': "
                                             "'{runs}/MGCN_seed{seed}', 'model.strength_start': 0.5})]\n"))
    assert ablate.main(argv) == 0
    assert (tmp_path / "runs" / "egra" / "MGCN_seed3" / "results.json").exists()
    assert not (tmp_path / "runs" / "egra" / "EGRA_seed3").exists()  # its JSON stands, nothing read it again
    with open(tmp_path / "results" / "egra" / "MGCN_seed3.json") as f:
        retrained = json.load(f)
    with open(tmp_path / "runs" / "egra" / "MGCN_seed3" / "results.json") as f:
        assert json.load(f)["test"] == retrained["test"]


def test_two_devices_train_egra_like_one(phase1, tmp_path):
    import subprocess
    import sys

    records = []
    for devices in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        proc = subprocess.run([sys.executable, "-m", "mmjax.main", "--config=configs/egra.py",
                               f"--workdir={tmp_path / str(devices)}", f"--config.model.pretrained_workdir={phase1}",
                               "--config.train.num_epochs=2", "--config.train.batch_size=500",
                               "--config.model.embed_dim=16", "--config.model.knn_k=5", "--config.train.progress=none",
                               f"--config.data.synthetic.num_users={SMALL['num_users']}",
                               f"--config.data.synthetic.num_items={SMALL['num_items']}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(tmp_path / str(devices) / "metrics.jsonl") as f:
            records.append([json.loads(line) for line in f])
    for one, two in zip(*records):
        np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
        for part in ("align", "strength", "alignment_degree", "weight_std", "weight_min", "weight_max"):
            np.testing.assert_allclose(two["parts"][part], one["parts"][part], rtol=1e-4, err_msg=part)
