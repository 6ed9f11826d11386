"""DropoutNet (mmjax/models/dropoutnet.py) on the cold-start protocol, trained in one run beside its BPR-MF.

Where each default comes from:
- ColdRec (YuanchenBei/ColdRec, its CLI defaults for DropoutNet and its MF backbone): embed_dim 64 (MF rank
  and tower output), Xavier-uniform MF tables, reg_weight 1e-4 (the MF's EmbLoss), hidden (200, 100),
  input_dropout 0.5 (n_dropout), Adam 1e-3, batch 4096, one negative per pair from every item.
- The original DropoutNet (layer6ai-labs/DropoutNet): cold items' preference input is zero at scoring.
- Ours: dropoutnet_weight 1 (the MSE beside BPR; one run instead of ColdRec's two), 'batch' normalisation
  with whole-table statistics in training and scoring, per-modality L2-normalised content (as CLCRec's
  original code prepares it; ColdRec has one raw content matrix).
- The protocol (defaults.coldstart_config): evaluation every 10 epochs from the first, selection on cold valid
  NDCG@10, patience 20 evaluations, at most 1000 epochs.
"""

from mmjax import defaults


def get_config():
    config = defaults.coldrec_baseline_config("dropoutnet")  # embed_dim 64, Xavier init, reg 1e-4, Adam 1e-3, batch 4096
    config.model.hidden = (200, 100)
    config.model.input_dropout = 0.5  # share of items whose preference input is zeroed each step
    config.model.norm = "batch"  # "batch": whole-table statistics; "layer": LayerNorm
    config.model.cold_preference = "zeros"  # a cold item's preference input at scoring; "mf": its MF row (ColdRec)
    config.model.dropoutnet_weight = 1.0
    return config
