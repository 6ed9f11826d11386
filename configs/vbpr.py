"""VBPR (MMRec settings: embedding_size 64; reg_weight 2.0, the first value of VBPR.yaml's grid and the one
of MMRec's tiktok anchor run). Reads every modality the dataset has unless config.model.modalities names some."""

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "vbpr"
    config.model.embed_dim = 64  # d: item ID and content parts are d wide each, users 2d
    config.model.reg_weight = 2.0
    config.model.feature_norm = "none"  # MMRec projects the raw features; "l2" / "standard" for ablations
    return config
