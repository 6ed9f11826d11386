"""MAGNET ablations (specs/magnet.md §6) on a two-modality dataset such as tiktok (image, audio).

The base is configs/magnet.py. Each variant removes one piece: the routing regulariser, the routed
mixture (uniform weights or concat + MLP), the role templates (vanilla MoE: with the default linear
experts, each of the 9 experts a learned linear map of the concatenated sources instead of a fixed
template mix), the entropy-triggered schedule (coverage only, specialisation only, a fixed switch at
epoch 50), one of the two graph views, or one modality (the templates are rebuilt for the sources left).
"""


def get_grid():
    return [
        ("MAGNET", {}),
        ("w/o routing regularisation", {"model.lambda_bal": 0.0, "model.lambda_cov": 0.0, "model.lambda_spec": 0.0}),
        ("w/o MoE fusion (uniform 1/E)", {"model.moe_fusion": "uniform"}),
        ("w/o MoE fusion (concat + MLP)", {"model.moe_fusion": "concat_mlp"}),
        ("w/o templates (vanilla MoE)", {"model.experts": "vanilla"}),
        ("schedule: coverage only", {"model.schedule.mode": "coverage"}),
        ("schedule: specialisation only", {"model.schedule.mode": "specialise"}),
        ("schedule: fixed switch at 50", {"model.schedule.mode": "fixed"}),
        ("view I only", {"model.views": "interaction"}),
        ("view C only", {"model.views": "content"}),
        ("drop audio", {"model.modalities": ("image",)}),
        ("drop image", {"model.modalities": ("audio",)}),
        ("w/o side view", {"model.side_view": False, "model.align_weight": 0.0}),
    ]
