"""One file per system or baseline; `build_model` maps config.model.name to its module."""

from mmjax.models.bpr import BPRMF
from mmjax.models.lightgcn import LightGCN
from mmjax.models.outputs import Embeddings
from mmjax.models.registry import MODELS, build_model, consts_builder

__all__ = ["BPRMF", "Embeddings", "LightGCN", "MODELS", "build_model", "consts_builder"]
