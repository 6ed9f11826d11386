"""FREEDOM (MMRec's FREEDOM.yaml: dropout 0.8, reg_weight 0.0 = its best on tiktok, from grids [0.8, 0.9] and
[0.0, 1e-5, 1e-4, 1e-3])."""

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "freedom"
    config.model.reg_weight = 0.0  # weight of the modality-feature BPR terms (no embedding L2 in FREEDOM)
    config.model.dropout = 0.8  # share of train edges dropped each epoch (degree-sensitive)
    config.model.knn_k = 10
    config.model.knn_weighted = False  # MMRec's FREEDOM: binary kNN graphs; True = cosine-valued (LATTICE's)
    config.model.mm_image_weight = 0.1  # 'image' kNN graph weight; the other modalities share the rest
    config.model.n_mm_layers = 1
    config.model.n_ui_layers = 2
    config.model.train_features = True  # raw feature tables trained through the reg_weight terms, as in MMRec
    # Read by MMRec's FREEDOM but never used in its computation; kept for a like-for-like config.
    config.model.lambda_coeff = 0.9
    return config
