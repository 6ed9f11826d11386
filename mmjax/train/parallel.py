"""Data parallelism over local devices: batches sharded, parameters and graphs replicated (jax.pmap).

Multi-host runs see every host's devices in one mapped axis; each host feeds its own devices' shards of
the same global batch, which every host derives from the seed.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np

from mmjax.errors import ConfigError

AXIS = "devices"  # the pmap axis name the losses reduce over

_replicate_on_devices = jax.pmap(lambda x: x, axis_name=AXIS)  # same mesh as the train step: no recompile


def check_global_batch(batch_size: int) -> int:
    """The per-device batch; ConfigError when the global batch does not split evenly over the devices."""
    devices = jax.device_count()
    if batch_size % devices:
        raise ConfigError(f"train.batch_size: the global batch {batch_size} must be divisible by the "
                          f"{devices} devices it is split over")
    return batch_size // devices


def shard_batches(batches: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """[steps, global batch, ...] -> [local devices, steps, per-device batch, ...]: this host's shards."""
    global_devices, local_devices = jax.device_count(), jax.local_device_count()
    first = jax.process_index() * local_devices

    def shard(array: np.ndarray) -> np.ndarray:
        steps, batch = array.shape[:2]
        split = array.reshape(steps, global_devices, batch // global_devices, *array.shape[2:])
        return np.moveaxis(split[:, first:first + local_devices], 1, 0)

    return {name: shard(np.asarray(array)) for name, array in batches.items()}


def replicate(tree: Any) -> Any:
    """One copy of every leaf on each local device (a leading device axis), placed once."""
    count = jax.local_device_count()
    if not jax.tree_util.tree_leaves(tree):
        return tree  # nothing to place (e.g. a model without constant inputs)
    return _replicate_on_devices(jax.tree_util.tree_map(
        lambda x: np.broadcast_to(np.asarray(x), (count, *np.shape(x))), tree))


def unreplicate(tree: Any) -> Any:
    """The first device's copy of a replicated tree."""
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def initialize_distributed(cfg: ml_collections.ConfigDict) -> None:
    """Joins a multi-host job when train.distributed.enabled; unset fields are detected by jax."""
    if cfg.enabled:
        jax.distributed.initialize(coordinator_address=cfg.coordinator_address, num_processes=cfg.num_processes,
                                   process_id=cfg.process_id)


def is_primary_host() -> bool:
    """Whether this process writes the workdir's files (process 0 of a multi-host job)."""
    return jax.process_index() == 0
