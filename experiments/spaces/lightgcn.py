"""LightGCN's search space for experiments/tune.py: MMRec's grid axes (layers, L2 weight) and the learning
rate, which MMRec fixes at 1e-3."""


def get_space():
    return {
        "model.n_layers": ("choice", 1, 2, 3, 4),
        "model.reg_weight": ("loguniform", 1e-6, 1e-1),
        "train.learning_rate": ("loguniform", 3e-4, 1e-2),  # below 3e-4 a run needs hundreds of epochs
    }
