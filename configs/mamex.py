"""MAMEX with the released code's defaults (specs/mamex.md section 8) on the cold-start protocol: D 128, 4 affine
experts per modality with top-2 routing, a gate MLP with dropout 0.1, loss weights 1e-6 / 1 / 1 / 1, Adam 1e-3,
batch 2048, evaluation every 10 epochs from the first, up to 1000 epochs. Reads every modality the dataset has
unless config.model.modalities names some; on tiktok the code's image slot is image and its text slot audio."""

from mmjax import defaults


def get_config():
    config = defaults.coldstart_config()
    config.model.name = "mamex"
    config.model.embed_dim = 128
    config.model.num_experts = 4  # 1: one linear map per modality (the w/o-MoE ablation)
    config.model.top_k = 2  # = num_experts: dense routing
    config.model.fusion = "gate"  # "mean": the w/o-gate ablation (no fusion balance loss either)
    config.model.fusion_dropout = 0.1
    config.model.reg_weight = 1e-6
    config.model.align_weight = 1.0
    config.model.moe_balance_weight = 1.0
    config.model.fusion_balance_weight = 1.0
    config.model.missing = "masked"  # how absent features enter: "masked" out of the gate and losses, "zero_fill"
    config.model.inductive = False  # True: the full-table losses see warm items only (with train.negative_pool
    # = "train_items", cold items never enter training)
    return config
