"""LightGCN (MMRec settings; n_layers 1 and reg_weight 0.01 are MMRec's best on tiktok and baby)."""

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "lightgcn"
    config.model.n_layers = 1
    config.model.reg_weight = 0.01
    return config
