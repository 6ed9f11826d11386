"""Defaults shared by every configs/<model>.py: data, training protocol (MMRec's) and evaluation."""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "graph"

    config.data = ml_collections.ConfigDict()
    config.data.dir = config_dict.placeholder(str)  # None: the built-in synthetic dataset
    # Where train / valid / test come from (data/splits.py): 'auto' = the file's x_label, else leave-one-out
    # by its order column, else random by split_ratios per user; or 'x_label', 'random', 'leave_one_out'
    config.data.split = "auto"
    config.data.split_ratios = (0.8, 0.1, 0.1)
    config.data.split_seed = 0
    config.data.item_category_field = "auto"  # a RecBole .item file's category column ('auto': categories, ...)
    config.data.kcore = 0  # > 1: first drop users and items with fewer interactions, repeatedly
    config.data.synthetic = ml_collections.ConfigDict(dict(
        num_users=1000, num_items=600, latent_dim=16, mean_interactions=20.0, num_categories=8,
        modalities=dict(image=(64, 0.5), text=(32, 1.0)), popularity_skew=1.0, seed=0, sequential=False))

    config.model = ml_collections.ConfigDict()
    config.model.name = "lightgcn"
    config.model.embed_dim = 64
    config.model.init = "xavier_uniform"
    config.model.reg_weight = 0.01
    config.model.propagation = "sparse"  # "sparse" (CSR product, fast) or "segment_sum" (the jraph reference)
    config.model.modalities = config_dict.placeholder(tuple)  # feature modalities a model reads; None = all

    config.train = ml_collections.ConfigDict()
    config.train.num_epochs = 1000
    config.train.batch_size = 2048
    config.train.learning_rate = 1e-3
    config.train.lr_decay = 1.0  # lr * lr_decay ** (epoch / lr_decay_every); 1.0 = constant
    config.train.lr_decay_every = 50
    config.train.seed = 999
    config.train.patience = 20
    config.train.progress = "auto"  # a bar inside each epoch: 'auto' (when stderr is a terminal), 'bar', 'none'
    config.train.tensorboard = False  # also write each epoch as TensorBoard scalars (<workdir>/tensorboard)
    config.train.checkpoint_every = 1  # epochs between saves of the latest state (<workdir>/checkpoints)
    # Multi-host: jax.distributed.initialize() before training; None = detected (Cloud TPU, SLURM, ...).
    config.train.distributed = ml_collections.ConfigDict(dict(
        enabled=False, coordinator_address=config_dict.placeholder(str),
        num_processes=config_dict.placeholder(int), process_id=config_dict.placeholder(int)))
    config.train.negative_pool = "train_items"  # MMRec draws negatives among items seen in training

    config.eval = ml_collections.ConfigDict()
    config.eval.ks = (5, 10, 20, 50)
    config.eval.metrics = ("recall", "ndcg", "precision", "map")  # any of recall ndcg precision map hr mrr nhr
    config.eval.monitor = "recall@20"  # the metric of the selection view (valid) that picks the best epoch
    config.eval.every = 1  # epochs between evaluations; patience counts evaluations
    config.eval.first_epoch = config_dict.placeholder(int)  # first evaluated epoch (0-based); None: every - 1
    config.eval.batch_size = 4096
    # Model selection: the monitor as compared (None: exact; RecBole rounds to metric_decimal_place = 4) and
    # which epoch of a tie is kept ('first', MMRec's; 'last': a tie replaces the best and restarts patience,
    # RecBole's early_stopping)
    config.eval.monitor_decimals = config_dict.placeholder(int)
    config.eval.ties = "first"
    config.eval.selection_only = False  # evaluate the selection view only (tuning trials never compute test)
    # Missing modality (train/missing.py): a seeded share of each reported view's items loses this modality's
    # features, scored as an extra view '<view>_no_<modality>_<percent>pct'
    config.eval.drop_modality = config_dict.placeholder(str)
    config.eval.drop_fraction = 1.0
    config.eval.drop_seed = 0

    config.recommend = ml_collections.ConfigDict()
    config.recommend.k = 20  # items per user written by --mode=recommend
    config.recommend.exclude_splits = ("train", "valid", "test")  # a user's items never recommended back
    return config


def sequential_config() -> ml_collections.ConfigDict:
    """Defaults of the sequential protocol (specs/sequential-protocol.md, RecBole's SASRec settings): next-item
    prediction, leave-one-out, full ranking with history items not masked, model selection on valid NDCG@10."""
    config = get_config()
    config.task = "sequential"
    config.data.synthetic.sequential = True  # time-ordered sequences with a planted next-item structure
    model = config.model
    model.embed_dim = 64  # hidden size
    model.max_len = 50  # history window (RecBole's MAX_ITEM_LIST_LENGTH)
    model.num_layers = 2
    model.num_heads = 2
    model.inner_size = 256
    model.hidden_dropout = 0.5
    model.attention_dropout = 0.5
    model.layer_norm_eps = 1e-12
    model.norm = "layernorm"
    model.feature_norm = "none"
    model.reg_weight = 0.0
    config.train.batch_size = 1024
    config.train.num_epochs = 100
    config.train.patience = 10  # RecBole's stopping_step: evaluations without improvement
    config.train.seed = 2020
    config.eval.ks = (5, 10, 20, 50)
    config.eval.metrics = ("hr", "recall", "ndcg", "mrr")
    config.eval.monitor = "ndcg@10"
    config.eval.batch_size = 2048
    config.eval.mask_history = False  # RecBole masks nothing for sequential models [our choice: flag]
    config.recommend.exclude_splits = ()  # next items may be repeats, as in evaluation
    return config


def coldstart_config() -> ml_collections.ConfigDict:
    """Defaults of the item cold-start protocol (specs/coldstart-protocol.md, the MAMEX code's schedule): a seeded
    20 % of items cold, negatives from every item, cold views ranking cold items only, evaluation every 10 epochs
    from the first, selection on valid NDCG@10, patience 20 evaluations (the code stops after 21 without gain)."""
    config = get_config()
    config.task = "coldstart"
    config.data.cold = ml_collections.ConfigDict(dict(fraction=0.2, seed=2025))  # ignored with cold_items.npy
    config.train.negative_pool = "all_items"  # the reference draws negatives among all items, cold ones too
    config.train.num_epochs = 1000
    config.train.patience = 20
    config.train.seed = 2025
    config.eval.ks = (10, 20, 50)
    config.eval.metrics = ("recall", "ndcg", "nhr", "precision")
    config.eval.monitor = "ndcg@10"
    config.eval.every = 10
    config.eval.first_epoch = 0
    return config


def coldrec_baseline_config(name: str) -> ml_collections.ConfigDict:
    """The cold-start protocol with the settings the ColdRec toolkit's CLI gives both content baselines
    (DropoutNet, CLCRec): rank-64 Xavier-uniform ID tables, L2 reg 1e-4, Adam 1e-3, batch 4096, and each
    modality L2-normalised before concatenation (ColdRec reads one raw matrix; "none" keeps it raw)."""
    config = coldstart_config()
    config.model.name = name
    config.model.embed_dim = 64
    config.model.init = "xavier_uniform"
    config.model.reg_weight = 1e-4
    config.model.feature_norm = "l2"
    config.train.batch_size = 4096
    config.train.learning_rate = 1e-3
    return config
