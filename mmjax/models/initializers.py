"""Initialisers by config name, matching PyTorch's Xavier conventions for [rows, dim] tables."""

from __future__ import annotations

from flax import linen as nn

from mmjax.errors import ConfigError

# torch.nn.init.xavier_normal_: a plain (untruncated) normal with std sqrt(2 / (fan_in + fan_out)); Flax's
# xavier_normal truncates at two standard deviations, so it is not what a PyTorch model starts from.
torch_xavier_normal = nn.initializers.variance_scaling(1.0, "fan_avg", "normal")

# For a [rows, dim] table both PyTorch and Flax use fan_in + fan_out = rows + dim.
_INITIALIZERS = {
    "xavier_uniform": nn.initializers.xavier_uniform,
    "xavier_normal": lambda: torch_xavier_normal,
}


def embedding_initializer(name: str):
    """The initialiser called `name`; ConfigError naming model.init otherwise."""
    if name not in _INITIALIZERS:
        raise ConfigError(f"model.init: expected one of {sorted(_INITIALIZERS)}, got {name!r}")
    return _INITIALIZERS[name]()
