"""Shared test helpers: small synthetic configs that train in a second or two."""

from mmjax import defaults


def small_config(model: str = "lightgcn", users: int = 300, items: int = 150, **train):
    """LightGCN (2 layers) or another model on a small synthetic dataset; `train` overrides config.train."""
    config = defaults.get_config()
    config.model.name = model
    config.model.n_layers = 2
    config.data.synthetic.num_users = users
    config.data.synthetic.num_items = items
    config.train.batch_size = 256
    config.train.num_epochs = 8
    config.train.patience = 20
    for key, value in train.items():
        config.train[key] = value
    return config
