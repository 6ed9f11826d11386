"""CAMMSR (specs/cammsr.md): the framework figure's form (§0b) by default, the earlier reconstruction with
`--config.model.camoe=subsets`. Encoder sizes and training are SASRec's (RecBole's settings); the switches
below are the spec's ablations. [our choice] marks what the paper leaves open."""

from mmjax import defaults


def get_config():
    config = defaults.sequential_config()
    model = config.model
    model.name = "cammsr"
    model.modalities = None  # every *_feat.npy of the data (text and image in the paper); ID via use_id
    model.use_id = True
    model.camoe = "figure"  # or "subsets" (spec §3: fixed modality-subset experts, one fused token)
    model.use_moe = True  # False: w/o CAMoE (streams as they are / mean fusion)
    model.num_experts = 4  # [our choice] K generic experts of the figure form
    model.expert_hidden = 128  # [our choice] d_ff = 2d
    model.expert_dropout = 0.1  # [our choice]
    model.gate = "attentive"  # [our choice] attention of the stream embedding over the expert outputs; or "linear"
    model.gate_temperature = 1.0
    model.category_guidance = True  # False: w/o CG (one learnt weight instead of the category-guided one)
    model.cat_weight = 1.0  # L_cat weight; 0: w/o L_cat
    model.category_noise = 0.0  # share of items whose category label is replaced by a random item's
    # [our choice] L_MSCL weight (spec default 1.0; its sweep 0.01-1): at 1.0 with DyT the first epochs on scientific
    # do not train (valid NDCG@10 .0010 after epoch 0), at 0.1 they do (.0063, .0206 after epoch 1); 0: w/o MSCL
    model.swap_weight = 0.1
    model.swap_ratio = 0.3  # [our choice] share of real positions swapped (each independently)
    model.swap_temperature = 1.0  # HM4SR's sequence-contrast temperature
    model.score_mode = "sum"  # [our choice] Σ_m <Z_m, ē_m(j)>; or "mean"
    model.experts = "all"  # subsets form: every non-empty stream subset; "uni": w/o synergy
    model.expert_attention = True  # subsets form: self-attention among the experts; False: w/o expert-attn
    model.norm = "dyt"  # DyT in place of LayerNorm (the paper); "layernorm" for the ablation
    model.dyt_input_alpha0 = 0.5  # [our choice] DyT α at the encoder input (the DyT paper: 0.5)
    return config
