"""CLCRec (mmjax/models/clcrec.py) on the cold-start protocol.

Where each default comes from:
- ColdRec (YuanchenBei/ColdRec, its CLI defaults = the original README's MovieLens command except reg and
  batch): embed_dim 64, Xavier-uniform ID tables, reg_weight 1e-4, num_negatives 128, temperature 2.0,
  lambda_weight 0.5 (lr_lambda), hybrid_ratio 0.5 (num_sample), encoder hidden width 256, Adam 1e-3, batch 4096.
- The original CLCRec (weiyinwei/CLCRec): each modality L2-normalised before concatenation (ColdRec reads
  one raw content matrix).
- The protocol (defaults.coldstart_config): evaluation every 10 epochs from the first, selection on cold valid
  NDCG@10, patience 20 evaluations, at most 1000 epochs. The loss draws its own negatives from the warm items,
  so train.negative_pool only sets the batch's unused negative.
"""

from mmjax import defaults


def get_config():
    config = defaults.coldrec_baseline_config("clcrec")  # embed_dim 64, Xavier init, reg 1e-4, Adam 1e-3, batch 4096
    config.model.num_negatives = 128  # per positive, from the warm items
    config.model.temperature = 2.0
    config.model.lambda_weight = 0.5  # L = λ item-content contrast + (1 - λ) user-item contrast
    config.model.hybrid_ratio = 0.5  # share of draws replacing ID vectors by content vectors in the user-item term
    config.model.encoder_hidden = 256
    return config
