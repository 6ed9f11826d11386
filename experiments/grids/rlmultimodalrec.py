"""RLMultimodalRec ablations (specs/rlmultimodalrec.md §6) on a two-modality dataset such as tiktok.

The base is configs/rlmultimodalrec.py: vector gate, L = 2, l2-normalised features, content added to the
item IDs through a learned scale starting at 0. 'none' is LightGCN at the same depth with MMRec's
LightGCN regulariser (the model without modalities); single-modality variants keep one modality (its
gate is then 1).
"""


def get_grid():
    return [
        ("gate (vector), L=2", {}),
        ("gate (scalar)", {"model.gate": "scalar"}),
        ("fusion mean", {"model.fusion": "mean"}),
        ("fusion concat", {"model.fusion": "concat"}),
        ("fusion sum", {"model.fusion": "sum"}),
        ("image only", {"model.modalities": ("image",)}),
        ("audio only", {"model.modalities": ("audio",)}),
        ("none (LightGCN, L=2)", {"model.name": "lightgcn", "model.reg_weight": 0.01}),
        ("L=0 (MF + content)", {"model.n_layers": 0}),
        ("L=1", {"model.n_layers": 1}),
        ("L=3", {"model.n_layers": 3}),
        ("ID + content, no learned scale", {"model.content_scale_init": None}),
        ("raw features (no l2)", {"model.feature_norm": "none"}),
    ]
