"""MAGNET (specs/magnet.md): dual-view graph, 9 role-structured graph experts, entropy-triggered routing.

Values the paper leaves open are the spec's [our choice] defaults; every ablation of spec §6 is a flag
here (see experiments/grids/magnet.py).
"""

import ml_collections

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "magnet"
    config.model.n_layers = 2  # LightGCN layers of both views
    config.model.n_mm_layers = 1  # hops of each modality's projected features on its kNN item graph
    config.model.knn_k = 10
    config.model.views = "both"  # both | interaction (view I only) | content (view C only)
    config.model.view_fusion = "scalar"  # scalar: h_I + σ(w) h_C, w from 0 | sum | mean | gate
    config.model.content_edge_weight = 1.0  # β: weight of the content item-item edges in view C
    config.model.content_img_weight = 0.5  # 'image' share of the content edges; other modalities share the rest
    config.model.feature_norm = "none"  # raw features (none) | l2 rows | standard columns, before projection
    # LayerNorm of the expert sources: all (layernorm) | the modality ones only (modalities) | none; its scale
    # starts at source_scale_init
    config.model.source_norm = "layernorm"
    config.model.source_scale_init = 1.0
    config.model.experts = "template"  # template (3 roles x K sources) | vanilla (all read every source)
    config.model.moe_fusion = "router"  # router | uniform (g = 1/E) | concat_mlp (MLP over all experts) | none
    config.model.base_term = True  # keep <h_u, h_i> of the behaviour vectors as a residual score term
    # [our choice] ŷ = base + s · expert term with a learned scalar s from this value (None: s = 1), so
    # training decides how much the experts add (from 0 the model starts as its behaviour graph)
    config.model.expert_scale_init = 0.0
    config.model.expert_dot_scale = 1.0  # fixed factor on the expert dot products (1/d: mean per dimension)
    # projected: W x + b (the spec) | purified: item ID ⊙ σ(W x + b), so modality sources live in the ID space
    config.model.modality_input = "projected"
    # [our choice] True: no gradient from the expert term into the ID embeddings (they train on the behaviour
    # term), which keeps the experts from memorising train pairs through the IDs
    config.model.detach_ids = False
    # users' modality sources: normalised (R̂ h, the spec) | mean_loo (mean of the train items' vectors, the
    # training pair's own item left out, as it is never in the history of an item ranked at test time)
    config.model.history = "normalised"
    # what an expert gives for a node: its MLP output (vector, the spec) | the node's behaviour vector with
    # each dimension gated by σ(MLP output) (behaviour_gate [our choice]: bounded by the behaviour term, so
    # the experts re-weight what the graph learned instead of adding free capacity; on tiktok 'vector'
    # drove the train BPR loss down fast and valid Recall@20 peaked near .07 within 5 epochs)
    config.model.expert_output = "behaviour_gate"
    config.model.router_rank = 16  # [our choice] low-rank bilinear router: cost per pair ~ rank * hidden
    config.model.router_hidden = 16
    config.model.router_temperature = 1.0
    config.model.top_k = 3  # experts kept per pair once the ramp reaches 1
    config.model.reg_weight = 1e-4  # λ_reg: ½‖ego rows‖² over the batch
    config.model.lambda_bal = 1e-2  # load balance (KL of the mean gates to uniform)
    config.model.lambda_cov = 1e-2  # stage 1: reward per-pair entropy
    config.model.lambda_spec = 1e-2  # stage 2: penalise per-pair entropy, weighted by the ramp ρ
    config.model.schedule = ml_collections.ConfigDict(dict(
        mode="entropy",  # entropy | coverage (never triggers) | specialise (ρ = 1 from epoch 0) | fixed
        ema_decay=0.9, min_entropy=0.8, tolerance=0.01, window=5, max_trigger_epoch=50, ramp_epochs=20))
    config.eval.batch_size = 256  # users per full-ranking block: the router scores users x items x experts
    return config
