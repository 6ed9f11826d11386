"""Item representations handed over from an earlier, finished run (EGRA's phase 1), with their provenance."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from mmjax.errors import DataError


@dataclasses.dataclass(frozen=True, eq=False)
class PretrainedItems:
    """vectors: float32 [num_items, d], read-only, the items' final representations at the run's best epoch;
    workdir / model / best_epoch say which run; digest is the SHA-256 of the vectors' bytes."""

    vectors: np.ndarray
    workdir: str
    model: str
    best_epoch: int
    digest: str = ""

    def __post_init__(self) -> None:
        vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or not vectors.shape[0] or not vectors.shape[1]:
            raise DataError(f"{self.workdir}: pretrained item vectors must be a non-empty [items, d] matrix, "
                            f"got shape {vectors.shape}")
        if not np.all(np.isfinite(vectors)):
            raise DataError(f"{self.workdir}: pretrained item vectors hold non-finite values")
        vectors.setflags(write=False)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "digest", hashlib.sha256(vectors.tobytes()).hexdigest())

    def identity(self) -> dict[str, Any]:
        """What a run built on these vectors records, and what a resume must find unchanged."""
        return {"workdir": self.workdir, "model": self.model, "best_epoch": self.best_epoch,
                "shape": list(self.vectors.shape), "items_sha256": self.digest}
