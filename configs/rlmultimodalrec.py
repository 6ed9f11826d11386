"""RLMultimodalRec (specs/rlmultimodalrec.md): gated fusion of projected modality features + 2-layer LightGCN."""

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "rlmultimodalrec"
    config.model.n_layers = 2
    config.model.reg_weight = 1e-4  # λ of the squared L2 on the batch's ID rows
    config.model.fusion = "gate"  # gate | mean | sum | concat
    config.model.gate = "vector"  # vector (per dimension) | scalar (per item)
    config.model.item_init = "id+content"  # id+content | content_only | concat_proj
    config.model.content_dropout = 0.0
    # [our choice] None: item0 = ID + content as in the paper; a float: ID + s·content with a learned scalar s
    # starting there (0.0 starts as LightGCN and lets training decide how much content to mix in)
    config.model.content_scale_init = 0.0
    config.model.proj_weight_decay = 0.0  # λ_w on the projection / gate kernels
    # [our choice] raw features differ in scale by modality (tiktok: image rows have norm ~33, audio ~4.5)
    config.model.feature_norm = "l2"  # l2 (rows) | standard (columns) | none
    return config
