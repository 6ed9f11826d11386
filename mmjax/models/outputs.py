"""What every top-K model returns: final embeddings for scoring and layer-0 ones for L2."""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class Embeddings:
    """Final user/item vectors (scores are their dot products) and the layer-0 (ego) tables."""

    users: jax.Array
    items: jax.Array
    ego_users: jax.Array
    ego_items: jax.Array
