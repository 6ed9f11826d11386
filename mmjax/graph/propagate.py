"""Propagation of node features over a weighted GraphsTuple: x' = Â x."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph


def propagate_segment_sum(graph: jraph.GraphsTuple, x: jax.Array) -> jax.Array:
    """Reference path: each edge sends weight * x[sender], summed at its receiver (the jraph way)."""
    messages = x[graph.senders] * graph.edges[:, None].astype(x.dtype)
    return jax.ops.segment_sum(messages, graph.receivers, num_segments=x.shape[0],
                               indices_are_sorted=False)


def lightgcn_layers(graph: jraph.GraphsTuple, x0: jax.Array, num_layers: int,
                    propagate=propagate_segment_sum) -> jax.Array:
    """Mean of the layer outputs [x0, Âx0, ..., Â^L x0], LightGCN's layer combination."""
    layers = [x0]
    x = x0
    for _ in range(num_layers):
        x = propagate(graph, x)
        layers.append(x)
    return jnp.mean(jnp.stack(layers, axis=0), axis=0)
