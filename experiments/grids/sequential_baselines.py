"""SASRec, SASRec with fused features and CAMMSR (the first rows of experiments/grids/sequential.py)."""

from experiments.grids.sequential import BASELINES


def get_grid():
    return BASELINES
