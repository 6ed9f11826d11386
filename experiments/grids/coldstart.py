"""MAMEX beside the cold-start baselines, and MAMEX's ablations (specs/mamex.md §9), over configs/mamex.py.

Baseline rows train from their own config files. Run the first three rows alone with
`--variant MAMEX --variant DropoutNet --variant CLCRec`.
"""

BASELINES = [
    ("MAMEX", {}),
    ("DropoutNet", {"config": "configs/dropoutnet.py"}),
    ("CLCRec", {"config": "configs/clcrec.py"}),
]
ABLATIONS = [
    ("w/o modality MoE (one linear map)", {"model.num_experts": 1, "model.top_k": 1}),
    ("w/o fusion gate (mean)", {"model.fusion": "mean"}),
    ("w/o MoE balance loss", {"model.moe_balance_weight": 0.0}),
    ("w/o fusion balance loss", {"model.fusion_balance_weight": 0.0}),
    ("w/o alignment loss", {"model.align_weight": 0.0}),
    ("dense routing (top-4 of 4)", {"model.top_k": 4}),
    ("8 experts, top-2", {"model.num_experts": 8}),
    ("image only", {"model.modalities": ("image",)}),
    ("audio only", {"model.modalities": ("audio",)}),
]


def get_grid(baselines_only: bool = False):
    return BASELINES if baselines_only else BASELINES + ABLATIONS
