"""Data parallelism: 2 devices and 1 device train identically; bad global batches are config errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mmjax.errors import ConfigError
from mmjax.train import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--config.data.synthetic.num_users=300", "--config.data.synthetic.num_items=150",
         "--config.train.num_epochs=3", "--config.train.batch_size=250", "--config.model.n_layers=2",
         "--config.train.learning_rate=0.01"]


def train_on_devices(workdir, devices: int, *overrides: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process whose CPU shows `devices` devices (the flag must precede jax's start)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    command = [sys.executable, "-m", "mmjax.main", "--config=configs/lightgcn.py", f"--workdir={workdir}",
               *SMALL, *overrides]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def epoch_losses(workdir) -> np.ndarray:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return np.array([json.loads(line)["loss"] for line in f])


def test_two_devices_train_like_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for workdir, devices in ((one, 1), (two, 2)):
        proc = train_on_devices(workdir, devices)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"over {devices} device(s)" in proc.stderr
    losses_one, losses_two = epoch_losses(one), epoch_losses(two)
    assert len(losses_one) == len(losses_two) == 3
    # 250 does not divide the epoch's pairs: the padded last batch splits unevenly over the 2 devices.
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-4)
    assert losses_one[-1] < losses_one[0]


def test_global_batch_must_divide_over_devices(tmp_path):
    proc = train_on_devices(tmp_path, 2, "--config.train.batch_size=255")
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train.batch_size" in errors[0] and "2 devices" in errors[0]


def test_shard_batches_splits_the_global_batch_in_order():
    batches = {"users": np.arange(12).reshape(2, 6)}  # 2 steps of a global batch of 6
    sharded = parallel.shard_batches(batches)
    assert sharded["users"].shape == (1, 2, 6)  # this process sees one CPU device
    np.testing.assert_array_equal(sharded["users"][0], batches["users"])
    assert parallel.check_global_batch(6) == 6


def test_replicate_and_unreplicate_round_trip():
    tree = {"a": np.arange(3.0), "b": np.int32(4)}
    replicated = parallel.replicate(tree)
    assert replicated["a"].shape == (1, 3)
    back = parallel.unreplicate(replicated)
    np.testing.assert_array_equal(back["a"], tree["a"])
    assert int(back["b"]) == 4


def test_check_global_batch_rejects_non_positive_split(monkeypatch):
    monkeypatch.setattr(parallel.jax, "device_count", lambda: 4)
    with pytest.raises(ConfigError, match="divisible by the 4 devices"):
        parallel.check_global_batch(6)


GRADIENT_CHECK = """
import functools, sys
import jax, jax.numpy as jnp, numpy as np
from mmjax.config_files import load_config_file
from mmjax.data import make_synthetic
from mmjax.train.loop import global_loss_and_grads
from mmjax.train.parallel import AXIS, replicate, shard_batches
from mmjax.train.topk import graph_topk_task

config = load_config_file(sys.argv[1])
config.model.n_layers = 2
data = make_synthetic(num_users=120, num_items=80, seed=3)
task = graph_topk_task(config, data)
params = task.init_params(jax.random.PRNGKey(0))
batch = {k: v[0] for k, v in task.epoch_batches(0).items()}  # one global batch, padded rows at its end
rng = jax.random.PRNGKey(1)
schedule = task.initial_schedule()
loss_fn = task.loss_fn
if schedule is not None:  # the sparse stage: top-k routing, specialisation weights
    schedule = dict(schedule, rho=jnp.ones((), jnp.float32))
    loss_fn = functools.partial(task.loss_fn, schedule=schedule)
(loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, task.consts, batch, rng, None)
sharded = {k: v[:, 0] for k, v in shard_batches({k: v[None] for k, v in batch.items()}).items()}
mapped = jax.pmap(lambda p, c, b, s: global_loss_and_grads(task, p, c, b, rng, s), axis_name=AXIS)
losses, mapped_parts, mapped_grads = mapped(replicate(params), replicate(task.consts), sharded, replicate(schedule))
print(float(np.max(np.abs(np.asarray(losses) - float(loss)))))
# Relative to the leaf's largest entry, floored at 1e-3 of the largest gradient anywhere: a leaf whose
# gradient is a near-cancelling sum (MAGNET's side-view attention bias: the softmax over modalities ignores
# what all modalities share) carries the rounding of its summands, not of its tiny result.
floor = 1e-3 * max(float(np.max(np.abs(np.asarray(g)))) for g in jax.tree_util.tree_leaves(grads))
errors = jax.tree_util.tree_map(lambda g, m: float(np.max(np.abs(np.asarray(m) - np.asarray(g)[None])) /
                                                  max(np.max(np.abs(np.asarray(g))), floor, 1e-12)), grads, mapped_grads)
print(max(jax.tree_util.tree_leaves(errors)))
print(max(float(np.max(np.abs(np.asarray(mapped_parts[k]) - float(parts[k])))) for k in parts))
"""


@pytest.mark.parametrize("config_file", ["configs/lightgcn.py", "configs/magnet.py"])
def test_two_device_gradients_equal_the_global_batch_gradient(config_file):
    # Adam hides a constant gradient scale, so losses alone would not catch one: compare gradients.
    # MAGNET adds batch-level routing statistics (entropy, expert load) that must also be global.
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", GRADIENT_CHECK, config_file], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loss_error, gradient_error, parts_error = (float(x) for x in proc.stdout.split())
    assert loss_error < 1e-6
    assert gradient_error < 1e-5
    assert parts_error < 1e-6


def test_distributed_initialise_only_when_enabled(monkeypatch):
    from mmjax import defaults

    calls = []
    monkeypatch.setattr(parallel.jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    cfg = defaults.get_config().train.distributed
    parallel.initialize_distributed(cfg)
    assert calls == []
    cfg.enabled, cfg.coordinator_address, cfg.num_processes, cfg.process_id = True, "10.0.0.1:1234", 2, 1
    parallel.initialize_distributed(cfg)
    assert calls == [dict(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=1)]
