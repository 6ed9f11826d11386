"""Graphs built once from train data (host side) and propagation over them (jax)."""

from mmjax.graph.bipartite import (content_augmented_graph, dense_adjacency, symmetric_weights, user_item_block,
                                   user_item_graph)
from mmjax.graph.knn import knn_cosine_edges, knn_item_graph, mixed_knn_graph
from mmjax.graph.propagate import (PROPAGATION_KINDS, BipartiteAdjacency, Graph, SparseAdjacency, bipartite_adjacency,
                                   lightgcn_layers, lightgcn_layers_bipartite, lightgcn_user_item, propagate, propagate_segment_sum,
                                   propagate_sparse, propagation_graph, sparse_adjacency)

__all__ = ["PROPAGATION_KINDS", "BipartiteAdjacency", "Graph", "SparseAdjacency", "bipartite_adjacency",
           "lightgcn_layers_bipartite", "lightgcn_user_item", "content_augmented_graph", "dense_adjacency",
           "knn_cosine_edges", "knn_item_graph", "mixed_knn_graph", "lightgcn_layers",
           "propagate", "propagate_segment_sum", "propagate_sparse", "propagation_graph", "sparse_adjacency",
           "symmetric_weights", "user_item_block", "user_item_graph"]
