"""The sequential protocol (specs/sequential-protocol.md, RecBole's): next-item prediction, leave-one-out.

Training instances are every train interaction after a user's first, with the train interactions before it
as history (RecBole's prefix augmentation), shuffled each epoch; the valid and test queries are each
user's second-to-last and last interaction with everything before it as history. Histories are windows of
the last model.max_len items (data/sequences.py). Every item is ranked; with eval.mask_history False
(RecBole's behaviour for sequential models) the items of the history are ranked too.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from mmjax.data import InteractionDataset
from mmjax.data.sequences import (PAD_ID, UserSequences, history_windows, query_positions, training_instances,
                                  whole_history_positions)
from mmjax.errors import ConfigError, DataError
from mmjax.eval import EvalSet
from mmjax.models import build_model
from mmjax.models.base import SequenceModel
from mmjax.train.task import Task


def require_sequences(dataset: InteractionDataset, model_name: str) -> UserSequences:
    """The dataset's sequences; DataError when it has no order column."""
    if dataset.sequences is None:
        raise DataError(f"model {model_name!r} is sequential: dataset {dataset.name!r} needs an order column "
                        "(seq_pos or timestamp) in its .inter file, and has none")
    return dataset.sequences


def epoch_instance_batches(histories: np.ndarray, targets: np.ndarray, batch_size: int,
                           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One epoch as stacked arrays [steps, batch, ...]: 'history', 'target', 'weights' (0 on padding rows).

    Instances are shuffled, then cut into batches; the last one is padded, so a partial batch still
    averages over its real rows (as RecBole's last, smaller batch does).
    """
    order = rng.permutation(len(targets))
    steps = -(-len(targets) // batch_size)
    padded = steps * batch_size

    def stack(values: np.ndarray) -> np.ndarray:
        out = np.zeros((padded,) + values.shape[1:], dtype=values.dtype)
        out[:len(values)] = values
        return out.reshape((steps, batch_size) + values.shape[1:])

    weights = np.zeros(padded, dtype=np.float32)
    weights[:len(targets)] = 1.0
    return {"history": stack(histories[order]), "target": stack(targets[order]),
            "weights": weights.reshape(steps, batch_size)}


def query_view(sequences: UserSequences, split: str, max_len: int, mask_history: bool) -> EvalSet:
    """The `split` ('valid' or 'test') view: one query per user whose target has a history."""
    users, positions = query_positions(sequences, split)
    if len(users) == 0:
        raise DataError(f"sequences: no user has a {split} interaction with a history before it")
    windows = history_windows(sequences, users, positions, max_len)
    num_items = sequences.num_items
    if mask_history:
        exclude = np.where(windows != PAD_ID, windows - 1, num_items).astype(np.int32)
    else:
        exclude = np.full((len(users), 1), num_items, dtype=np.int32)
    return EvalSet(users=users, ground_truth=sequences.items[positions][:, None].astype(np.int32),
                   exclude=exclude, num_items=num_items, inputs={"history": windows})


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
        return epoch_instance_batches(histories, targets, batch_size, np.random.default_rng([seed, epoch]))

    mask_history = bool(config.eval.get("mask_history", False))
    eval_sets = {split: query_view(sequences, split, max_len, mask_history) for split in ("valid", "test")}

    def recommend_inputs(user_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Each user's window over the whole sequence (train, valid and test): what comes next."""
        return {"history": history_windows(sequences, user_ids, whole_history_positions(sequences, user_ids),
                                           max_len)}

    return Task(model_name=config.model.name, dataset_name=dataset.name, init_params=model.init,
                loss_fn=model.loss, epoch_batches=epoch_batches, score_state=model.scoring_state,
                score_fn=model.score_fn, consts=model.consts, eval_sets=eval_sets,
                recommend_inputs=recommend_inputs)
