"""The sequential protocol (specs/sequential-protocol.md, RecBole's): next-item prediction, leave-one-out.

Training instances are every train interaction after a user's first, with the train interactions before it
as history (RecBole's prefix augmentation), shuffled each epoch; the valid and test queries are each
user's second-to-last and last interaction with everything before it as history. Histories are windows of
the last model.max_len items (data/sequences.py). Every item is ranked; with eval.mask_history False
(RecBole's behaviour for sequential models) the items of the history are ranked too.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.data.sequences import (PAD_ID, UserSequences, history_windows, pack_windows, query_positions,
                                  training_instances, whole_history_positions)
from mmjax.errors import ConfigError, DataError
from mmjax.eval import EvalSet
from mmjax.models import build_model, consts_builder
from mmjax.models.base import SequenceModel
from mmjax.train.task import Task


def require_sequences(dataset: InteractionDataset, model_name: str) -> UserSequences:
    """The dataset's sequences; DataError when it has no order column."""
    if dataset.sequences is None:
        raise DataError(f"model {model_name!r} is sequential: dataset {dataset.name!r} needs an order column "
                        "(seq_pos or timestamp) in its .inter file, and has none")
    return dataset.sequences


ROW_MULTIPLE = 8  # packed rows per device are rounded up to a multiple of this: few distinct shapes to compile


def epoch_instance_batches(histories: np.ndarray, targets: np.ndarray, batch_size: int, shards: int,
                           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One epoch as stacked arrays [steps, ...]: PackedRows fields ('tokens', 'segments', 'positions'
    [steps, rows, L], 'last' [steps, batch]), 'target' and 'weights' [steps, batch] (0 on padding instances).

    Instances are shuffled, then cut into batches (the last one padded, so a partial batch averages over
    its real instances, as RecBole's last, smaller batch does). Each device's share of a batch is packed
    into its own rows, so data parallelism splits rows and instances alike.
    """
    order = rng.permutation(len(targets))
    steps = -(-len(targets) // batch_size)
    per_shard = batch_size // shards
    chunks = [order[start:start + per_shard] for start in range(0, steps * batch_size, per_shard)]
    packed = [pack_windows(histories[chunk]) for chunk in chunks]
    rows = -(-max(len(p.tokens) for p in packed) // ROW_MULTIPLE) * ROW_MULTIPLE
    packed = [p.padded(rows) for p in packed]

    def stack_rows(field: str) -> np.ndarray:
        return np.stack([getattr(p, field) for p in packed]).reshape(steps, shards * rows, -1)

    def stack_instances(values: list[np.ndarray]) -> np.ndarray:
        out = np.zeros(steps * batch_size, dtype=values[0].dtype)
        for index, value in enumerate(values):
            out[index * per_shard:index * per_shard + len(value)] = value
        return out.reshape(steps, batch_size)

    weights = [np.ones(len(chunk), np.float32) for chunk in chunks]
    return {"tokens": stack_rows("tokens"), "segments": stack_rows("segments"),
            "positions": stack_rows("positions"), "last": stack_instances([p.last for p in packed]),
            "target": stack_instances([targets[chunk] for chunk in chunks]), "weights": stack_instances(weights)}


def packed_blocks(windows: np.ndarray, block_size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each block of `block_size` consecutive windows packed into rows (one row count for all blocks):
    ({'tokens', 'segments', 'positions': [blocks, rows, L]}, 'last' [n] within the query's block)."""
    chunks = [windows[start:start + block_size] for start in range(0, len(windows), block_size)]
    packed = [pack_windows(chunk) for chunk in chunks]
    rows = -(-max(len(p.tokens) for p in packed) // ROW_MULTIPLE) * ROW_MULTIPLE
    packed = [p.padded(rows) for p in packed]
    fields = {name: np.stack([getattr(p, name) for p in packed]) for name in ("tokens", "segments", "positions")}
    return fields, np.concatenate([p.last for p in packed])


def query_view(sequences: UserSequences, split: str, max_len: int, mask_history: bool,
               block_size: int) -> EvalSet:
    """The `split` ('valid' or 'test') view: one query per user whose target has a history; each block of
    `block_size` queries comes with its histories packed into rows ('tokens', 'segments', 'positions',
    'last'), which score as the left-padded 'history' windows do, at the cost of their real items."""
    users, positions = query_positions(sequences, split)
    if len(users) == 0:
        raise DataError(f"sequences: no user has a {split} interaction with a history before it")
    windows = history_windows(sequences, users, positions, max_len)
    num_items = sequences.num_items
    if mask_history:
        exclude = np.where(windows != PAD_ID, windows - 1, num_items).astype(np.int32)
    else:
        exclude = np.full((len(users), 1), num_items, dtype=np.int32)
    block_size = min(block_size, len(users))
    rows, last = packed_blocks(windows, block_size)
    return EvalSet(users=users, ground_truth=sequences.items[positions][:, None].astype(np.int32),
                   exclude=exclude, num_items=num_items, inputs={"history": windows, "last": last},
                   block_inputs=rows, block_size=block_size)


def sequential_task(config: ml_collections.ConfigDict, dataset: InteractionDataset) -> Task:
    """A Task for any registered sequence model: shuffled prefix instances, CE-trained, full-ranking views."""
    sequences = require_sequences(dataset, config.model.name)
    model = build_model(config.model, dataset)
    if not isinstance(model, SequenceModel):
        raise ConfigError(f"model.name: {config.model.name!r} is not a sequential model; task 'sequential' "
                          "needs one such as 'sasrec' or 'cammsr'")
    max_len = int(config.model.max_len)
    users, positions = training_instances(sequences)
    if len(users) == 0:
        raise DataError(f"dataset {dataset.name!r}: no user has two train interactions, so there is nothing to "
                        "learn a next item from")
    histories = history_windows(sequences, users, positions, max_len)
    targets = sequences.items[positions].astype(np.int32)
    seed, batch_size = int(config.train.seed), int(config.train.batch_size)

    def epoch_batches(epoch: int) -> dict[str, np.ndarray]:
        return epoch_instance_batches(histories, targets, batch_size, jax.device_count(),
                                      np.random.default_rng([seed, epoch]))

    mask_history = bool(config.eval.get("mask_history", False))
    eval_block = int(config.eval.batch_size)
    if eval_block < 1:
        raise ConfigError(f"eval.batch_size: expected a positive int, got {eval_block}")
    eval_sets = {split: query_view(sequences, split, max_len, mask_history, eval_block) for split in ("valid", "test")}

    def recommend_inputs(user_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Each user's window over the whole sequence (train, valid and test): what comes next."""
        return {"history": history_windows(sequences, user_ids, whole_history_positions(sequences, user_ids),
                                           max_len)}

    return Task(model_name=config.model.name, dataset_name=dataset.name, init_params=model.init,
                loss_fn=model.loss, epoch_batches=epoch_batches, score_state=model.scoring_state,
                score_fn=model.score_fn, consts=model.consts, eval_sets=eval_sets,
                recommend_inputs=recommend_inputs, consts_with=consts_builder(config.model, dataset))
