"""SASRec with RecBole 1.2.1's settings (shared/anchors.md): ID only; `--config.model.modalities="('text',)"`
adds each named feature, linearly projected, to the item vectors (the plain-fusion baseline)."""

from mmjax import defaults


def get_config():
    config = defaults.sequential_config()
    config.model.name = "sasrec"
    config.model.modalities = ()  # none: ID only
    # RecBole's softmax also covers its padding row, a trainable extra class never scored [our choice: off]
    config.model.softmax_pad = False
    return config
