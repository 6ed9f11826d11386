"""MAGNET (specs/magnet.md): dual-view graph, 9 role-structured graph experts, entropy-triggered routing.

Values the paper leaves open are the spec's [our choice] defaults; every ablation of spec §6 is a flag
here (see experiments/grids/magnet.py).
"""

import ml_collections

from mmjax import defaults


def get_config():
    config = defaults.get_config()
    config.model.name = "magnet"
    # LightGCN layers of both views. 3 [our choice] (spec default 2, grid {1,2,3}): on tiktok it lifts valid
    # Recall@20 at every seed (999/2024/2025: .1097/.1097/.1123 against .1024/.1064/.1083 at 2 layers;
    # experiments/results/magnet_layers_probes_tiktok.json)
    config.model.n_layers = 3
    config.model.n_mm_layers = 1  # hops of each modality's projected features on its kNN item graph
    config.model.knn_k = 10
    config.model.views = "both"  # both | interaction (view I only) | content (view C only)
    # mean [our choice]: (h_I + h_C) / 2 | scalar: h_I + σ(w) h_C, w from 0 (the spec) | sum | gate. With the side
    # view, scalar's larger vectors fitted tiktok's train pairs sooner and peaked lower (seed-999 valid Recall@20
    # .0991 against .1028; experiments/results/magnet_side_probes_tiktok.json)
    config.model.view_fusion = "mean"
    config.model.content_view_weight = 0.5  # view_fusion=weighted: (1 - a) h_I + a h_C with a this share
    config.model.content_edge_weight = 1.0  # β: weight of the content item-item edges in view C
    config.model.content_img_weight = 0.5  # 'image' share of the content edges; other modalities share the rest
    config.model.feature_norm = "none"  # raw features (none) | l2 rows | standard columns, before projection
    # LayerNorm of the expert sources: all (layernorm, the spec's [our choice]) | the modality ones only
    # (modalities) | none; its scale starts at source_scale_init. none [our choice]: LayerNorm-ed sources have
    # norm ~sqrt(d), so the expert dot products dwarf the behaviour term; on tiktok they fitted the train
    # pairs within a few epochs (train BPR 0.05 by epoch 11, valid Recall@20 falling from .064 at epoch 5)
    config.model.source_norm = "none"
    config.model.source_scale_init = 1.0
    config.model.experts = "template"  # template (3 roles x K sources) | vanilla (all read every source)
    config.model.moe_fusion = "router"  # router | uniform (g = 1/E) | concat_mlp (MLP over all experts) | none
    config.model.base_term = True  # keep <h_u, h_i> of the behaviour vectors as a residual score term
    # [our choice] ŷ = base + s · expert term with a learned scalar s from this value (None: s = 1), so
    # training decides how much the experts add (from 0 the model starts as its behaviour graph)
    config.model.expert_scale_init = 0.0
    # fixed factor on the expert dot products. 1/d [our choice]: a mean per dimension, so the expert term is a
    # small per-pair correction; at 1 it overfitted tiktok in every seed-999 probe with the side view (valid
    # Recall@20 peaks .0949-.0988, attached or detached, dense or top-k, against .1024 at 1/d)
    config.model.expert_dot_scale = 1.0 / 64
    # projected: W x + b (the spec) | purified [our choice]: item ID ⊙ σ(W x + b), so the modality sources
    # live in the ID space and are mixed with the behaviour vectors by the templates on an equal footing
    config.model.modality_input = "purified"
    # [our choice] True: no gradient from the expert term into the ID embeddings (they train on the behaviour
    # term), which keeps the experts from memorising train pairs through the IDs
    config.model.detach_ids = False
    # users' modality sources: normalised (R̂ h, the spec) | mean_loo (mean of the train items' vectors, the
    # training pair's own item left out, as it is never in the history of an item ranked at test time)
    config.model.history = "normalised"
    # what an expert gives for a node: its output vector (vector, the spec) | the node's behaviour vector
    # with each dimension gated by σ(output) (behaviour_gate). On tiktok behaviour_gate's gates saturated at
    # σ = 1 (90 % of them above 0.9999), so its expert term was s·⟨h_u, h_i⟩, a rescaled behaviour term that
    # changed 0.007 % of the test top-20s (python -m mmjax.report: expert_effect)
    config.model.expert_output = "vector"
    # [our choice] width of each expert's output (None: embed_dim, the spec): full ranking forms one
    # [users x items] dot product per expert, so this sets most of its cost
    # 32-d experts rank the tiktok valid users in 0.62 s against 0.81 s at 64-d (LightGCN: 0.21 s), but their
    # learned 64 -> 32 projections made valid Recall@20 fall from .082 at epoch 8 to .04 by epoch 19 (seed 999)
    config.model.expert_dim = ml_collections.config_dict.placeholder(int)
    # each expert a residual GELU MLP (True, the spec) | linear (False [our choice]): the template's input mix
    # itself (a learned linear map of all sources for experts=vanilla). On tiktok every MLP form tried
    # (64-d or 16-d outputs, with or without LayerNorm, purified inputs, detached IDs) stayed at or below
    # valid Recall@20 .068 over 12 epochs while the train loss fell fast; linear experts reached .078 by
    # epoch 11 and .096 at epoch 29
    config.model.expert_mlp = False
    config.model.expert_shared_projection = False  # with expert_dim < embed_dim: one projection for all
    # [our choice] low-rank bilinear router: full ranking costs ~ rank * hidden multiply-adds and `hidden`
    # tanh per pair; 8 x 4 scores a tiktok ranking pass 2x faster than 16 x 16
    config.model.router_rank = 8
    config.model.router_hidden = 4
    config.model.router_temperature = 1.0
    config.model.top_k = 3  # experts kept per pair once the ramp reaches 1
    config.model.reg_weight = 1e-4  # λ_reg: ½‖ego rows‖² over the batch
    config.model.lambda_bal = 1e-2  # load balance (KL of the mean gates to uniform)
    config.model.lambda_cov = 1e-2  # stage 1: reward per-pair entropy
    config.model.lambda_spec = 1e-2  # stage 2: penalise per-pair entropy, weighted by the ramp ρ
    # [our choice] InfoNCE aligning each batch user's and positive item's graph vector with its side view
    # (without side_view: the mean of its modality sources); MGCN's self-supervised term, weight and
    # temperature as there; 0 = off
    config.model.align_weight = 0.01
    config.model.align_temperature = 0.2
    # [our choice] add MGCN's side view of the modality sources (attention common part + behaviour-gated
    # specific parts) into the scored behaviour vectors. On tiktok (seed 999) it lifts valid Recall@20 from
    # .0959 to .1024-.1041; the graph views and experts alone stayed below MGCN in every form tried
    config.model.side_view = True
    # [our choice] no gradient from the expert term (experts and router) into the encoder: the sources are
    # read as they are, so the experts re-score what the graph and side views learn (on tiktok the expert
    # term at full scale still overfitted: seed-999 valid Recall@20 .0975-.0988)
    config.model.detach_experts = False
    config.model.schedule = ml_collections.ConfigDict(dict(
        mode="entropy",  # entropy | coverage (never triggers) | specialise (ρ = 1 from epoch 0) | fixed
        ema_decay=0.9, min_entropy=0.8, tolerance=0.01, window=5, max_trigger_epoch=50, ramp_epochs=20))
    # [our choice] full ranking scores exactly only each user's this many best items by an upper bound
    # (<h_u, h_i> + |s| max_e‖z^e_u‖ max_e‖z^e_i‖, one [users x items] product); a block whose bounds do
    # not certify the top k scores every item (eval/pruning.py): exact either way.
    # 0 = score every item. On tiktok (3 layers) 96 certifies all valid blocks of seed 999 (95.7 % of 2024's
    # and 2025's) and ranks them 1.5-2.2x faster than scoring every item (0.35-0.48 s against 0.65-0.76 s;
    # 128: 0.41-0.53 s; experiments/results/bench_rank_magnet_tiktok.json)
    config.model.rank_candidates = 96
    # users per full-ranking block: each block forms ~30 [users x items] arrays (9 expert dot products,
    # router units, gates), which stay in cache at 32-64 users (256: 1.6x slower on tiktok)
    config.eval.batch_size = 64
    return config
