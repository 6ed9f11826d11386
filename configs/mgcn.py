"""MGCN (MMRec's MGCN.yaml: n_ui_layers 2, n_layers 1, knn_k 10, reg_weight 1e-4, cl_loss 0.01 from the
grid [0.001, 0.01, 0.1], learning-rate decay 0.96 every 50 epochs)."""

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "mgcn"
    config.model.n_ui_layers = 2  # LightGCN layers of the user-item (behaviour) view
    config.model.n_layers = 1  # hops over each modality's kNN item graph
    config.model.knn_k = 10
    config.model.reg_weight = 1e-4  # squared L2 of the batch's final rows
    config.model.cl_loss = 0.01  # weight of the InfoNCE terms (MMRec's name)
    config.model.cl_temperature = 0.2
    config.model.train_features = True  # raw features fine-tuned, as MMRec's from_pretrained(freeze=False)
    config.train.lr_decay = 0.96
    config.train.lr_decay_every = 50
    return config
