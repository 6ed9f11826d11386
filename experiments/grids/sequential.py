"""The sequential baselines and CAMMSR's ablations (specs/cammsr.md §6), over the base configs/cammsr.py.

SASRec rows switch the model and its norm back to RecBole's (LayerNorm); 'SASRec + text' fuses every
feature modality into the item vectors (plain fusion). Run the first three rows alone with
`get_grid(baselines_only=True)` through `--grid=experiments/grids/sequential_baselines.py`.
"""

SASREC = {"model.name": "sasrec", "model.norm": "layernorm"}
BASELINES = [
    ("SASRec", {**SASREC, "model.modalities": ()}),
    ("SASRec + features", {**SASREC, "model.modalities": None}),
    ("CAMMSR", {}),
]
ABLATIONS = [
    ("w/o category guidance", {"model.category_guidance": False}),
    ("w/o L_cat", {"model.cat_weight": 0.0}),
    ("w/o CAMoE", {"model.use_moe": False}),
    ("w/o MSCL", {"model.swap_weight": 0.0}),
    ("LayerNorm instead of DyT", {"model.norm": "layernorm"}),
    ("linear gate", {"model.gate": "linear"}),
    ("score mean", {"model.score_mode": "mean"}),
    ("subsets form (spec §3)", {"model.camoe": "subsets"}),
    ("subsets, w/o synergy", {"model.camoe": "subsets", "model.experts": "uni"}),
    ("subsets, w/o expert-attn", {"model.camoe": "subsets", "model.expert_attention": False}),
    ("ID stream only", {"model.modalities": ()}),
    ("features only (no ID)", {"model.use_id": False}),
    ("20% category-label noise", {"model.category_noise": 0.2}),
]


def get_grid(baselines_only: bool = False):
    return BASELINES if baselines_only else BASELINES + ABLATIONS
