"""Reusable Linen pieces: PyTorch-initialised dense layers, gates, experts and routers."""

from mmjax.nn.linear import TorchLinear, torch_default_uniform

__all__ = ["TorchLinear", "torch_default_uniform"]
