"""SASRec, SASRec with every feature modality fused into the item vectors (the plain-fusion baseline), and
SASRec with RecBole's trainable padding class in its training softmax (`model.softmax_pad`)."""

from experiments.grids.sequential import BASELINES, SASREC


def get_grid():
    return [*BASELINES[:2], ("SASRec + pad class", {**SASREC, "model.modalities": (), "model.softmax_pad": True})]
