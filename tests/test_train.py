"""The shared trainer on small synthetic data: learning, early stopping, determinism, outputs."""

import json

import jax
import pytest

from mmjax.errors import ConfigError
from mmjax.train.loop import eval_spec
from mmjax.train.state import EarlyStopping
from mmjax.train.train import train_and_evaluate

from helpers import small_config


@pytest.mark.parametrize("model", ["bpr", "lightgcn"])
def test_training_learns_and_writes_one_record_per_epoch(tmp_path, model):
    config = small_config(model, learning_rate=0.01)
    results = train_and_evaluate(config, str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == results["epochs_run"] == 8
    assert records[-1]["loss"] < records[0]["loss"]
    # Random ranking of 150 items gives recall@20 ~ 0.13 on average.
    assert results["valid"]["recall@20"] > 0.3
    assert results["test"]["recall@20"] > 0.3
    assert records[results["best_epoch"]]["valid"] == results["valid"]


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    # A learning rate this small leaves the ranking unchanged, so epoch 0 stays best.
    config = small_config(learning_rate=1e-12, patience=2, num_epochs=50)
    results = train_and_evaluate(config, str(tmp_path))
    assert results["best_epoch"] == 0
    assert results["epochs_run"] == 4  # epoch 0, then three evaluations without strict improvement


def test_same_seed_same_results_other_seed_differs(tmp_path):
    one = train_and_evaluate(small_config(num_epochs=3), str(tmp_path / "a"))
    two = train_and_evaluate(small_config(num_epochs=3), str(tmp_path / "b"))
    other = train_and_evaluate(small_config(num_epochs=3, seed=1), str(tmp_path / "c"))
    assert one["test"] == two["test"] and one["valid"] == two["valid"]
    assert one["test"] != other["test"]


def test_early_stopping_state():
    stopper = EarlyStopping()
    for epoch, value in enumerate([0.1, 0.2, 0.2, 0.15]):
        stopper = stopper.update(value, epoch)
    assert stopper.best_epoch == 1 and stopper.bad_epochs == 2
    assert not stopper.should_stop(2) and stopper.should_stop(1)


def test_recbole_selection_rule_keeps_the_later_of_tied_rounded_values():
    """eval.monitor_decimals = 4 with eval.ties = 'last' is RecBole's rule: .06071 and .06068 both round to
    .0607, so the later epoch is kept and patience restarts; the default rule keeps epoch 0."""
    values = [0.06071, 0.06068, 0.0601]
    def spec_with(**fields):
        eval_cfg = small_config().eval
        for field, value in fields.items():
            eval_cfg[field] = value
        return eval_spec(eval_cfg)

    default, recbole = spec_with(), spec_with(monitor_decimals=4, ties="last")
    for spec, best_epoch, bad in ((default, 0, 2), (recbole, 1, 1)):
        stopper = EarlyStopping()
        for epoch, value in enumerate(values):
            stopper = stopper.update(spec.selection_value({spec.monitor: value}), epoch, later_ties=spec.later_ties)
        assert (stopper.best_epoch, stopper.bad_epochs) == (best_epoch, bad)
    for field, value in (("ties", "middle"), ("monitor_decimals", -1)):
        with pytest.raises(ConfigError, match=rf"eval\.{field}"):
            spec_with(**{field: value})


def tensorboard_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} read from the TFRecord event files in `logdir`."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(logdir.iterdir()):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_scalars_hold_each_epoch_once_also_after_a_resume(tmp_path):
    config = small_config(num_epochs=2, tensorboard=True)
    train_and_evaluate(config, str(tmp_path))
    config.train.num_epochs = 4  # resumed from the 2-epoch checkpoint
    train_and_evaluate(config, str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert [step for step, _ in scalars["loss"]] == [0, 1, 2, 3]
    assert [value for _, value in scalars["loss"]] == pytest.approx([r["loss"] for r in records], rel=1e-6)
    # TensorBoard tags spell '@' as '_'
    assert [v for _, v in scalars["valid/recall_20"]] == pytest.approx([r["valid"]["recall@20"] for r in records])
    assert {"time/train", "time/eval", "loss/bpr", "loss/reg"} <= set(scalars)


def test_tensorboard_flag_must_be_a_bool():
    import ml_collections

    from mmjax.train.loop import validate_train_config

    train = ml_collections.ConfigDict({**small_config().train.to_dict(), "tensorboard": "yes"})
    with pytest.raises(ConfigError, match="train.tensorboard: expected True or False"):
        validate_train_config(train)


def test_the_progress_bar_sees_every_step_and_changes_no_number(tmp_path):
    import numpy as np

    from mmjax.train.loop import EpochTrainer
    from mmjax.train.progress import StepBar
    from mmjax.train.parallel import replicate
    from mmjax.train.train import prepare

    config = small_config(num_epochs=2)
    _, task = prepare(config)
    bar = StepBar()
    outcomes = []
    for on_step in (None, bar.on_step):
        trainer = EpochTrainer.build(task, config.train, on_step)
        state = replicate(trainer.initial_state(0))
        losses = []
        for epoch in range(2):
            bar.start(epoch, trainer.steps_per_epoch)
            state, step_losses, _, _ = trainer.run_epoch(state, epoch)
            bar.stop()
            losses.append(step_losses)
        outcomes.append((np.concatenate(losses), state.params))
    assert bar.steps_seen == trainer.steps_per_epoch  # the second epoch's steps, each counted once
    np.testing.assert_array_equal(outcomes[0][0], outcomes[1][0])
    for a, b in zip(*(jax.tree_util.tree_leaves(params) for _, params in outcomes)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    bar_run = train_and_evaluate(small_config(num_epochs=2, progress="bar"), str(tmp_path / "bar"))
    plain = train_and_evaluate(small_config(num_epochs=2, progress="none"), str(tmp_path / "none"))
    assert bar_run["valid"] == plain["valid"] and bar_run["test"] == plain["test"]


def test_progress_setting_is_checked():
    from mmjax.train.progress import wants_bar

    assert wants_bar("bar") and not wants_bar("none")
    with pytest.raises(ConfigError, match="train.progress: expected one of"):
        wants_bar("yes")


def test_a_finished_run_leaves_nothing_of_itself_in_memory(tmp_path):
    """jax's pmap memoises the train-epoch closure; fit drops it when the run ends, so a process running many
    runs (a search, the test suite) does not keep each run's task, constants and executables."""
    import gc
    import weakref

    from mmjax.train.loop import fit
    from mmjax.train.train import prepare

    config = small_config(num_epochs=1)
    _, task = prepare(config)
    alive = weakref.ref(task)
    fit(task, config, str(tmp_path / "run"), {})
    del task
    gc.collect()
    assert alive() is None
