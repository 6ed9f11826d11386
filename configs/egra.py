"""EGRA, phase 2 (specs/egra.md): MGCN's settings (configs/mgcn.py) over the train graph enhanced by a
pretrained item-item graph, with bi-level dynamic alignment weights.

Phase 1 is a finished graph run, MGCN by default:
  python -m mmjax.main --config=configs/mgcn.py --workdir=runs/mgcn
  python -m mmjax.main --config=configs/egra.py --config.model.pretrained_workdir=runs/mgcn --workdir=runs/egra
(experiments/egra_pipeline.py runs both.)
"""

import os

from ml_collections import config_dict

from mmjax.config_files import load_config_file


def get_config():
    config = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mgcn.py"))
    config.model.name = "egra"
    config.model.pretrained_workdir = config_dict.placeholder(str)  # the finished phase-1 run (required)
    config.model.pretrained_dim = config_dict.placeholder(int)  # expected width of its item vectors; None: any
    config.model.item_graph = "pretrained"  # 'pretrained' | 'features' (raw-feature kNN, ablation) | 'none'
    config.model.pretrained_k = 10  # neighbours per item in S_pre
    config.model.item_graph_weight = 1.0  # β of the item-item block of the enhanced behaviour graph
    config.model.item_graph_symmetrise = "max"  # max(S, Sᵀ) [our choice] or 'mean' (S + Sᵀ) / 2
    # Entity level: 'poorly_aligned' (w ∝ exp(-a/T)), 'well_aligned' (exp(+a/T)) or 'uniform' (w = 1)
    config.model.entity_weighting = "poorly_aligned"
    config.model.entity_weight_temperature = 0.5
    config.model.entity_weight_clip = (0.1, 5.0)
    # Step level: λ(t) = cl_loss · (strength_start + (1 - strength_start) · min(1, t / strength_ramp_epochs))
    config.model.strength_start = 0.1
    config.model.strength_ramp_epochs = 50.0  # 0: λ = cl_loss throughout (fixed strength)
    return config
