"""EGRA beside its backbone and baselines, and its ablations (specs/egra.md §6), over configs/egra.py.

The MGCN row is phase 1: it comes first, so for each seed it is trained (or reused) before the EGRA rows,
which read the best-valid item vectors of the MGCN run of their own seed. Run the pipeline with

  python -m experiments.ablate --config=configs/egra.py --grid=experiments/grids/egra.py \
      --data=../shared/data/tiktok --seeds=999,2024,2025 --name=egra_tiktok
"""

PHASE1 = {"model.pretrained_workdir": "{runs}/MGCN_seed{seed}"}

ROWS = [
    ("MGCN", {"config": "configs/mgcn.py"}),
    ("EGRA", PHASE1),
    ("FREEDOM", {"config": "configs/freedom.py"}),
    ("w/o item-item graph (MGCN + dynamic alignment)", {"model.item_graph": "none"}),
    ("raw-feature item graph", {"model.item_graph": "features"}),
    ("uniform entity weights (step level alone)", {**PHASE1, "model.entity_weighting": "uniform"}),
    ("fixed strength (entity level alone)", {**PHASE1, "model.strength_ramp_epochs": 0.0}),
    ("neither level (MGCN + enhanced graph)", {**PHASE1, "model.entity_weighting": "uniform",
                                               "model.strength_ramp_epochs": 0.0}),
    ("entity weights favour the well aligned", {**PHASE1, "model.entity_weighting": "well_aligned"}),
]


def get_grid():
    return ROWS
