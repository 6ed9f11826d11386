"""Dense layers initialised as the PyTorch models we compare against initialise theirs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


def torch_default_uniform(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch.nn.Linear's default for weight and bias."""
    bound = 1.0 / jnp.sqrt(max(fan_in, 1))

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchLinear(nn.Module):
    """y = x W + b with torch.nn.Linear's default initialisation (MMRec's projection layers)."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = torch_default_uniform(x.shape[-1])
        kernel = self.param("kernel", init, (x.shape[-1], self.features))
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", init, (self.features,))
        return y
