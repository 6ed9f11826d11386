"""Graphs built once from train data (host side) and propagation over them (jax)."""

from mmjax.graph.bipartite import dense_adjacency, symmetric_weights, user_item_graph
from mmjax.graph.knn import knn_item_graph
from mmjax.graph.propagate import lightgcn_layers, propagate_segment_sum

__all__ = ["dense_adjacency", "knn_item_graph", "lightgcn_layers", "propagate_segment_sum",
           "symmetric_weights", "user_item_graph"]
