"""BPR-MF (MMRec settings)."""

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "bpr"
    config.model.reg_weight = 0.01
    return config
