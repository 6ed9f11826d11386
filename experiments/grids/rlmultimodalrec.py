"""RLMultimodalRec ablations (specs/rlmultimodalrec.md §6) on a two-modality dataset such as tiktok.

'none' is LightGCN with the same depth and L2 (the model without modalities); single-modality variants
keep one modality (its gate is then 1). Depth 2 is the default model.
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
        ("none (LightGCN)", {"model.name": "lightgcn"}),
        ("L=0 (MF + content)", {"model.n_layers": 0}),
        ("L=1", {"model.n_layers": 1}),
        ("L=3", {"model.n_layers": 3}),
    ]
