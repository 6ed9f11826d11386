"""SASRec and SASRec with every feature modality fused into the item vectors (the plain-fusion baseline)."""

from experiments.grids.sequential import BASELINES


def get_grid():
    return BASELINES[:2]
