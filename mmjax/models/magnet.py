"""MAGNET (specs/magnet.md): dual-view graph, role-structured graph experts, entropy-triggered routing.

1. Dual-view graph learning: LightGCN over the interaction graph Â (view I) and over Â_C, the same
   graph plus content-induced item-item kNN edges (view C), on shared ID embeddings; fused lightly.
2. Modality representations: per modality, projected item features smoothed on the modality's kNN
   item graph; users get the normalised mean of their train items' vectors (R̂ h).
3. Experts: K = 1 + M sources (behaviour, then each modality), LayerNorm-ed; 3K experts = three roles
   (dominant, balanced, complementary) x K anchors (nn/experts.py), applied to users and items alike.
4. An interaction-conditioned router per (user, item) pair weights the experts' dot products:
   ŷ = <h_u, h_i> + Σ_e g_e(u, i) <z^e_u, z^e_i>, dense in stage 1 and top-k once the schedule's ramp
   reaches 1. Full ranking scores every item for every user, in user blocks.
5. With side_view [our choice], h = graph vectors + MGCN's side view of the modality sources (an attention
   common part plus behaviour-gated specific parts, nn/gates.common_specific_side).
Loss: BPR + λ_reg ½‖ego rows‖² / B + the routing regulariser whose weights follow the
EntropyTriggeredRouting schedule (models/magnet_schedule.py), kept in TrainState, + align_weight x InfoNCE
between the side view (or the mean modality source) and the graph vectors.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn
from flax import struct

from mmjax.data import InteractionDataset
from mmjax.errors import ConfigError, check_fields
from mmjax.eval.pruning import bounded_top_k, padded_upper
from mmjax.graph import (content_augmented_graph, lightgcn_layers, propagate, propagation_graph, user_item_block,
                         user_item_graph)
from mmjax.models.base import Batch, GraphModel, compiled_init
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import content_edges, item_knn_graph, modality_features, on_device, selected_modalities
from mmjax.nn.experts import (ROLES, GraphExperts, PairRouter, RouterSide, balance_divergence, normalised_entropy,
                              gated_mixture, role_templates, routing_gates)
from mmjax.nn.gates import common_specific_side
from mmjax.nn.linear import TorchLinear
from mmjax.train.losses import batch_sum, bpr_loss, info_nce, squared_norm_penalty
from mmjax.models.magnet_schedule import EntropyTriggeredRouting

VIEWS = ("both", "interaction", "content")
VIEW_FUSIONS = ("scalar", "sum", "mean", "weighted", "gate")
EXPERT_KINDS = ("template", "vanilla")
MOE_FUSIONS = ("router", "uniform", "concat_mlp", "none")
SOURCE_NORMS = ("layernorm", "modalities", "none")
MODALITY_INPUTS = ("projected", "purified")
HISTORIES = ("normalised", "mean_loo")
EXPERT_OUTPUTS = ("vector", "behaviour_gate")


@struct.dataclass
class Nodes:
    """Per-node outputs over U + I nodes: scored behaviour vectors, the K sources (before LayerNorm), ego rows.

    With side_view, behaviour = graph + side: the views' fused graph vectors plus the modalities' side view.
    """

    behaviour: jax.Array | None  # [N, d]; None when the side view is left to the rows that need it
    sources: jax.Array  # [K, N, d]
    ego: jax.Array  # [N, d]
    user_degree: jax.Array  # [U] train interactions per user
    graph: jax.Array  # [N, d] the fused dual-view vectors (sources[0] before detach_ids)
    side: jax.Array | None = None  # [N, d] the side view, with side_view (unless left to the rows)


@struct.dataclass
class Side:
    """What scoring needs of a set of users or of items (rows aligned)."""

    base: jax.Array  # [n, d] behaviour vectors (the residual dot-product term)
    experts: jax.Array  # [E, n, d] expert outputs ([1, n, d] fused for concat_mlp)
    router: RouterSide | None


def leave_one_out(means: jax.Array, held_out: jax.Array, degree: jax.Array) -> jax.Array:
    """Mean of a user's history without one of its items: (d·mean - x) / (d - 1); 0 for a one-item history.

    means, held_out: [..., n, d]; degree: [n] history sizes.
    """
    d = degree[:, None]
    return jnp.where(d > 1, (d * means - held_out) / jnp.maximum(d - 1, 1), 0.0)


class MAGNET(nn.Module):
    """Encoder, experts and router; methods are applied separately by the loss and by scoring."""

    num_users: int
    num_items: int
    modalities: tuple[str, ...]
    embed_dim: int = 64
    n_layers: int = 2
    n_mm_layers: int = 1
    views: str = "both"
    view_fusion: str = "scalar"
    content_view_weight: float = 0.5
    experts: str = "template"
    moe_fusion: str = "router"
    router_rank: int = 16
    router_hidden: int = 16
    expert_scale_init: float | None = 0.0
    source_norm: str = "layernorm"
    modality_input: str = "projected"
    detach_ids: bool = False
    history: str = "normalised"
    expert_output: str = "vector"
    expert_dim: int | None = None
    expert_mlp: bool = True
    expert_shared_projection: bool = False
    source_scale_init: float = 1.0
    embedding_init: str = "xavier_uniform"
    side_view: bool = False
    detach_experts: bool = False

    @property
    def num_sources(self) -> int:
        return 1 + len(self.modalities)

    @property
    def num_experts(self) -> int:
        return len(ROLES) * self.num_sources

    def setup(self):
        init = embedding_initializer(self.embedding_init)
        d = self.embed_dim
        self.user_embedding = self.param("user_embedding", init, (self.num_users, d), jnp.float32)
        self.item_embedding = self.param("item_embedding", init, (self.num_items, d), jnp.float32)
        if self.view_fusion == "scalar":
            self.view_weight = self.param("view_weight", nn.initializers.zeros, ())
        elif self.view_fusion == "gate":
            self.view_gate = TorchLinear(d)
        self.projections = [TorchLinear(d) for _ in self.modalities]
        normed = {"layernorm": range(self.num_sources), "modalities": range(1, self.num_sources), "none": ()}
        self.norms = {str(k): nn.LayerNorm(scale_init=nn.initializers.constant(self.source_scale_init))
                      for k in normed[self.source_norm]}
        templates = role_templates(self.num_sources) if self.experts == "template" else None
        self.expert_mlps = GraphExperts(
            templates=None if templates is None else tuple(map(tuple, templates.tolist())),
            num_experts=self.num_experts, out_dim=self.expert_dim, mlp=self.expert_mlp,
            shared_projection=self.expert_shared_projection)
        if self.expert_scale_init is not None:
            self.expert_scale = self.param("expert_scale", nn.initializers.constant(self.expert_scale_init), ())
        if self.side_view:
            self.side_query_hidden = TorchLinear(d)
            self.side_query_score = TorchLinear(1, use_bias=False)
            self.side_preferences = [TorchLinear(d) for _ in self.modalities]
        if self.moe_fusion == "router":
            self.router = PairRouter(self.num_experts, input_dim=d, rank=self.router_rank, hidden=self.router_hidden)
        elif self.moe_fusion == "concat_mlp":
            self.fuse_hidden = TorchLinear(d)
            self.fuse_out = TorchLinear(d)

    def fuse_views(self, interaction: jax.Array | None, content: jax.Array | None) -> jax.Array:
        if interaction is None or content is None:
            return interaction if content is None else content
        if self.view_fusion == "scalar":
            return interaction + nn.sigmoid(self.view_weight) * content
        if self.view_fusion == "sum":
            return interaction + content
        if self.view_fusion in ("mean", "weighted"):
            share = 0.5 if self.view_fusion == "mean" else self.content_view_weight
            return (1.0 - share) * interaction + share * content
        gate = nn.sigmoid(self.view_gate(jnp.concatenate([interaction, content], axis=-1)))
        return interaction + gate * content

    def encode(self, consts: dict[str, Any], side_on_rows: bool = False) -> Nodes:
        """Every node's vectors; with side_on_rows the side view (row by row) is left to rows_of,
        so a training step computes it for its batch's rows alone."""
        ego = jnp.concatenate([self.user_embedding, self.item_embedding], axis=0)
        interaction = (lightgcn_layers(consts["adjacency"], ego, self.n_layers)
                       if self.views in ("both", "interaction") else None)
        content = (lightgcn_layers(consts["content_adjacency"], ego, self.n_layers)
                   if self.views in ("both", "content") else None)
        behaviour = self.fuse_views(interaction, content)
        # With detach_ids the expert path reads the ID-derived vectors but trains only its own weights: the
        # IDs learn from the behaviour term alone, so the experts cannot memorise through them.
        ids = jax.lax.stop_gradient if self.detach_ids else (lambda x: x)
        sources = [ids(behaviour)]
        user_padding = jnp.zeros((self.num_users, self.embed_dim), jnp.float32)
        for name, projection in zip(self.modalities, self.projections):
            items = projection(consts["features"][name])
            if self.modality_input == "purified":  # behaviour-guided: the item IDs gated by the content
                items = ids(self.item_embedding) * nn.sigmoid(items)
            for _ in range(self.n_mm_layers):
                items = propagate(consts["item_graphs"][name], items)
            users = propagate(consts["user_items"], jnp.concatenate([user_padding, items], axis=0))[:self.num_users]
            sources.append(jnp.concatenate([users, items], axis=0))
        side = None
        if self.side_view and not side_on_rows:  # MGCN's common + specific modality view, added in
            side = self.side_view_of(sources[1:], behaviour)
        scored = None if self.side_view and side_on_rows else behaviour if side is None else behaviour + side
        return Nodes(behaviour=scored, sources=jnp.stack(sources, axis=0), ego=ego,
                     user_degree=consts["user_degree"], graph=behaviour, side=side)

    def side_view_of(self, modalities: list[jax.Array] | jax.Array, graph: jax.Array) -> jax.Array:
        """The side view [n, d] of rows from their modality sources [M, n, d] and graph vectors [n, d]."""
        return common_specific_side(list(modalities), graph, self.side_query_hidden, self.side_query_score,
                                    self.side_preferences)

    def rows_of(self, nodes: Nodes, rows: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(scored behaviour vectors, modality vectors) [n, d] of node rows: graph + side view and the side
        view (computed here when encode left it), or without side_view the behaviour vectors and the mean of
        the rows' modality sources (what the alignment pulls towards the graph vectors)."""
        if nodes.behaviour is not None:  # encode computed every node's
            modal = nodes.side[rows] if self.side_view else jnp.mean(nodes.sources[1:, rows], axis=0)
            return nodes.behaviour[rows], modal
        graph = nodes.graph[rows]
        side = self.side_view_of(nodes.sources[1:, rows], graph)
        return graph + side, side

    def side(self, nodes: Nodes, rows: jax.Array, users: bool, held_out: jax.Array | None = None,
             behaviour: jax.Array | None = None) -> Side:
        """The Side of node rows (item rows already offset by num_users); `behaviour` the rows' scored
        behaviour vectors when the caller has them (rows_of), else they are looked up or computed.

        held_out (item ids, one per user row): with history 'mean_loo', the users' modality sources leave
        that item out of their history mean, as at test time, when the ranked item is never in it.
        """
        if behaviour is None:
            behaviour = self.rows_of(nodes, rows)[0]
        if self.moe_fusion == "none":  # no expert term: the dual-view graph alone
            return Side(base=behaviour, experts=jnp.zeros((1, rows.shape[0], 1)), router=None)
        # With detach_experts the experts and the router re-score what the encoder learns, never shape it.
        all_sources = jax.lax.stop_gradient(nodes.sources) if self.detach_experts else nodes.sources
        sources = all_sources[:, rows]
        if held_out is not None and self.history == "mean_loo" and sources.shape[0] > 1:
            loo = leave_one_out(sources[1:], all_sources[1:, held_out + self.num_users], nodes.user_degree[rows])
            sources = jnp.concatenate([sources[:1], loo], axis=0)
        sources = jnp.stack([self.norms[str(k)](s) if str(k) in self.norms else s for k, s in enumerate(sources)])
        experts = self.expert_mlps(sources)
        if self.expert_output == "behaviour_gate":  # each expert re-weights the behaviour vector's dimensions
            experts = behaviour[None] * nn.sigmoid(experts)
        router = None
        if self.moe_fusion == "concat_mlp":
            stacked = jnp.transpose(experts, (1, 0, 2)).reshape(rows.shape[0], -1)
            experts = self.fuse_out(nn.gelu(self.fuse_hidden(stacked)))[None]
        elif self.moe_fusion == "router":
            routed = sources[0]
            router = self.router.user_side(routed) if users else self.router.item_side(routed)
        return Side(base=behaviour, experts=experts, router=router)

    def route_pairs(self, user: RouterSide, item: RouterSide) -> jax.Array:
        return self.router.pair_logits(user, item)

    def route_block(self, user: RouterSide, item: RouterSide) -> jax.Array:
        return self.router.block_logits(user, item)

    def __call__(self, consts: dict[str, Any]) -> jax.Array:
        """Touches every parameter (for init): scores of user 0 with item 0."""
        nodes = self.encode(consts)
        rows = jnp.zeros((1,), jnp.int32)
        user, item = self.side(nodes, rows, True), self.side(nodes, rows + self.num_users, False)
        out = jnp.sum(user.base * item.base) + jnp.sum(user.experts * item.experts)
        if self.expert_scale_init is not None:
            out = out * self.expert_scale
        if user.router is not None:
            out = out + jnp.sum(self.route_pairs(user.router, item.router))
        return out


def router_logits(module: MAGNET, params, user: Side, item: Side, outer: bool) -> list[jax.Array] | None:
    """Router logits, one array per expert: [n] for aligned pairs (or the rows' broadcast shape, as in
    candidate_scores), [B, I] with outer (every user row with every item row); None without a router
    (uniform weights or one fused expert vector)."""
    if module.moe_fusion != "router":
        return None
    if outer:
        return module.apply(params, user.router, item.router, method=MAGNET.route_block)
    pairs = module.apply(params, user.router, item.router, method=MAGNET.route_pairs)
    return [pairs[..., e] for e in range(pairs.shape[-1])]


def pair_gates(module: MAGNET, params, user: Side, item: Side, temperature: float, top_k: int,
               sparse: bool | jax.Array, outer: bool) -> list[jax.Array] | None:
    """Router gates, one array per expert, shaped as router_logits; None without a router."""
    logits = router_logits(module, params, user, item, outer)
    return None if logits is None else routing_gates(logits, temperature, top_k, sparse)


def pair_dots(user: Side, item: Side, outer: bool) -> tuple[jax.Array, list[jax.Array]]:
    """<h_u, h_i> and every expert's <z^e_u, z^e_i>: [n] per aligned pair, or [B, I] with outer."""
    if outer:
        return user.base @ item.base.T, [u @ i.T for u, i in zip(user.experts, item.experts)]
    return jnp.sum(user.base * item.base, axis=-1), [jnp.sum(u * i, axis=-1) for u, i in zip(user.experts, item.experts)]


def combined_scores(base: jax.Array, mixed: jax.Array, base_term: bool, scale: jax.Array) -> jax.Array:
    """ŷ = [<h_u, h_i>] + s · (the experts' dot products mixed by the gates, or their mean without)."""
    return scale * mixed + base if base_term else scale * mixed


def gated_dots(dots: list[jax.Array], gates: list[jax.Array] | None) -> jax.Array:
    """Σ_e g_e <z^e_u, z^e_i>, or the mean over experts without gates."""
    return sum(dots) / len(dots) if gates is None else sum(g * dot for g, dot in zip(gates, dots))


def expert_scale(params, factor: float = 1.0) -> jax.Array:
    """factor x the learned scale of the expert term (x 1 when the model has none)."""
    return factor * params["params"].get("expert_scale", jnp.ones((), jnp.float32))


def side_rows(side: Side, rows: jax.Array) -> Side:
    """The Side of a subset of its rows (experts are [E, n, d], every other array row-first)."""
    return jax.tree_util.tree_map(lambda x: x[:, rows] if x.ndim == 3 else x[rows], side)


def pair_scores(module: MAGNET, params, user: Side, item: Side, cfg: dict[str, Any],
                sparse: bool | jax.Array) -> tuple[jax.Array, list[jax.Array] | None]:
    """(ŷ [n], gates) of n aligned (user, item) rows: what training scores and full ranking must equal."""
    base, dots = pair_dots(user, item, outer=False)
    return routed_scores(module, params, user, item, base, dots, cfg, sparse)


def routed_scores(module: MAGNET, params, user: Side, item: Side, base: jax.Array, dots: list[jax.Array],
                  cfg: dict[str, Any], sparse: bool | jax.Array) -> tuple[jax.Array, list[jax.Array] | None]:
    """(ŷ, gates) of pairs from their dot products (pair_dots); of the Sides only the router inputs are read,
    and they broadcast to the pairs' shape."""
    gates = pair_gates(module, params, user, item, cfg["temperature"], cfg["top_k"], sparse, outer=False)
    scores = combined_scores(base, gated_dots(dots, gates), cfg["base_term"], expert_scale(params, cfg["dot_scale"]))
    return scores, gates


def candidate_scores(module: MAGNET, params, user: Side, items: Side, item_experts: jax.Array, ids: jax.Array,
                     cfg: dict[str, Any], sparse: bool | jax.Array) -> jax.Array:
    """ŷ [B, C] of each of B user rows with its C items ids [B, C] (as pair_scores of those pairs).

    item_experts [I, E * d] holds every item's experts in one row, so a candidate's are gathered in one
    contiguous read (gathering [E, I, d] per expert, or repeating users C times, costs 2-4x more on CPU).
    """
    rows, per_row = ids.shape
    num_experts, _, dim = user.experts.shape
    experts = item_experts[ids].reshape(rows, per_row, num_experts, dim)
    dots = jnp.einsum("bced,ebd->bce", experts, user.experts)
    base = jnp.einsum("bcd,bd->bc", items.base[ids], user.base)
    pair_user = Side(base=user.base, experts=user.experts,
                     router=jax.tree_util.tree_map(lambda x: x[:, None], user.router))
    pair_items = Side(base=items.base, experts=items.experts,
                      router=jax.tree_util.tree_map(lambda x: x[ids], items.router))
    return routed_scores(module, params, pair_user, pair_items, base, [dots[..., e] for e in range(num_experts)],
                         cfg, sparse)[0]


def expert_norm_bound(side: Side) -> jax.Array:
    """max_e ‖z^e‖ per row: |Σ_e g_e <z^e_u, z^e_i>| <= bound_u bound_i for any gates on the simplex (the
    per-pair max_e ‖z^e_u‖ ‖z^e_i‖ certified no more tiktok blocks)."""
    return jnp.max(jnp.linalg.norm(side.experts, axis=-1), axis=0)


@struct.dataclass
class RoutingWeights:
    """Regulariser weights: λ_bal KL(load || uniform) - (1 - ρ) λ_cov H̄ + ρ λ_spec H̄."""

    balance: float
    coverage: float
    specialise: float


def magnet_loss(module: MAGNET, cfg: dict[str, Any], params, consts, batch: Batch, rng: jax.Array,
                axis_name: str | None = None, schedule: dict[str, jax.Array] | None = None):
    """BPR + λ_reg ½‖ego rows‖²/B + routing regulariser; parts include the routing entropy and balance."""
    del rng
    nodes = module.apply(params, consts, True, method=MAGNET.encode)
    num_users = module.num_users
    rows = [batch["users"], batch["positives"] + num_users, batch["negatives"] + num_users]
    # the side view of the batch's rows only, in one pass: [users; positives; negatives]
    behaviour, modal = (jnp.split(x, 3) for x in module.apply(params, nodes, jnp.concatenate(rows),
                                                                method=MAGNET.rows_of))
    # The user's modality history leaves out the positive, for the positive and the negative alike.
    users = module.apply(params, nodes, rows[0], True, batch["positives"], behaviour[0], method=MAGNET.side)
    positives = module.apply(params, nodes, rows[1], False, None, behaviour[1], method=MAGNET.side)
    negatives = module.apply(params, nodes, rows[2], False, None, behaviour[2], method=MAGNET.side)
    rho = jnp.zeros((), jnp.float32) if schedule is None else schedule["rho"]
    sparse = rho >= 1.0
    (positive, positive_gates), (negative, negative_gates) = (
        pair_scores(module, params, users, items, cfg, sparse) for items in (positives, negatives))
    gates = [positive_gates, negative_gates]
    weights = batch["weights"]
    ranking = bpr_loss(positive, negative, weights, axis_name)
    reg = squared_norm_penalty(tuple(nodes.ego[rows] for rows in (
        batch["users"], batch["positives"] + num_users, batch["negatives"] + num_users)), weights, axis_name)
    total = ranking + cfg["reg_weight"] * reg
    parts = {"bpr": ranking, "reg": reg}
    if cfg["align_weight"] > 0:
        align = modality_alignment(modal[:2], [nodes.graph[r] for r in rows[:2]], batch["weights"],
                                   cfg["align_temperature"], axis_name)
        total = total + cfg["align_weight"] * align
        parts["align"] = align
    if gates[0] is not None:
        pairs = 2.0 * jnp.maximum(batch_sum(weights, axis_name), 1.0)
        stacked = [jnp.stack(g, axis=-1) for g in gates]  # [n, E] per side
        entropy = sum(batch_sum(weights * normalised_entropy(g), axis_name) for g in stacked) / pairs
        load = sum(batch_sum(weights[:, None] * g, axis_name, axis=0) for g in stacked) / pairs
        balance = balance_divergence(load)
        lam: RoutingWeights = cfg["routing"]
        route = lam.balance * balance - (1.0 - rho) * lam.coverage * entropy + rho * lam.specialise * entropy
        total = total + route
        parts.update(route=route, entropy=entropy, balance=balance, max_load=jnp.max(load))
    return total, parts


def modality_alignment(modal: list[jax.Array], graph: list[jax.Array], weights: jax.Array, temperature: float,
                       axis_name: str | None) -> jax.Array:
    """InfoNCE pulling each batch user's and positive item's modality vector (MAGNET.rows_of: the side view
    with side_view, else the mean of its modality sources) towards its graph vector (the other batch rows are
    the negatives), for users plus items: `modal` and `graph` hold the users' rows, then the positives'."""
    return sum(info_nce(m, g, weights, temperature, axis_name) for m, g in zip(modal, graph))


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first out-of-range MAGNET field."""
    expert_dim = cfg.get("expert_dim")  # runs saved before expert_dim/expert_mlp existed use the spec's
    align_weight, align_temperature = cfg.get("align_weight", 0.0), cfg.get("align_temperature", 0.2)
    rank_candidates = cfg.get("rank_candidates", 0)
    content_view_weight = cfg.get("content_view_weight", 0.5)
    checks = [
        ("n_layers", cfg.n_layers, cfg.n_layers >= 0, ">= 0"),
        ("n_mm_layers", cfg.n_mm_layers, cfg.n_mm_layers >= 0, ">= 0"),
        ("views", cfg.views, cfg.views in VIEWS, f"one of {VIEWS}"),
        ("view_fusion", cfg.view_fusion, cfg.view_fusion in VIEW_FUSIONS, f"one of {VIEW_FUSIONS}"),
        ("content_view_weight", content_view_weight, 0.0 <= content_view_weight <= 1.0, "in [0, 1]"),
        ("experts", cfg.experts, cfg.experts in EXPERT_KINDS, f"one of {EXPERT_KINDS}"),
        ("moe_fusion", cfg.moe_fusion, cfg.moe_fusion in MOE_FUSIONS, f"one of {MOE_FUSIONS}"),
        ("source_norm", cfg.source_norm, cfg.source_norm in SOURCE_NORMS, f"one of {SOURCE_NORMS}"),
        ("modality_input", cfg.modality_input, cfg.modality_input in MODALITY_INPUTS, f"one of {MODALITY_INPUTS}"),
        ("expert_output", cfg.expert_output, cfg.expert_output in EXPERT_OUTPUTS, f"one of {EXPERT_OUTPUTS}"),
        ("history", cfg.history, cfg.history in HISTORIES, f"one of {HISTORIES}"),
        ("expert_dim", expert_dim, expert_dim is None or expert_dim >= 1, ">= 1 or None (= embed_dim)"),
        ("expert_dim", expert_dim, cfg.expert_output != "behaviour_gate" or expert_dim in (None, cfg.embed_dim),
         "None or embed_dim with expert_output=behaviour_gate (it gates the behaviour vector)"),
        ("router_rank", cfg.router_rank, cfg.router_rank >= 1, ">= 1"),
        ("router_hidden", cfg.router_hidden, cfg.router_hidden >= 1, ">= 1"),
        ("router_temperature", cfg.router_temperature, cfg.router_temperature > 0, "> 0"),
        ("top_k", cfg.top_k, cfg.top_k >= 1, ">= 1"),
        ("rank_candidates", rank_candidates,
         isinstance(rank_candidates, int) and not isinstance(rank_candidates, bool) and rank_candidates >= 0,
         "an int >= 0 (0 = score every item)"),
        ("content_edge_weight", cfg.content_edge_weight, cfg.content_edge_weight >= 0, ">= 0"),
        ("content_img_weight", cfg.content_img_weight, 0.0 <= cfg.content_img_weight <= 1.0, "in [0, 1]"),
        ("lambda_bal", cfg.lambda_bal, cfg.lambda_bal >= 0, ">= 0"),
        ("lambda_cov", cfg.lambda_cov, cfg.lambda_cov >= 0, ">= 0"),
        ("lambda_spec", cfg.lambda_spec, cfg.lambda_spec >= 0, ">= 0"),
        ("align_weight", align_weight, align_weight >= 0, ">= 0"),
        ("align_temperature", align_temperature, align_temperature > 0, "> 0"),
    ]
    check_fields(checks, 'model.')


def user_history_graph(bipartite, dataset: InteractionDataset, history: str):
    """Item -> user edges lifting item vectors to users: R̂ = D_u^-1/2 R D_i^-1/2 ('normalised', the spec's
    history-induced cues) or the plain mean of the user's train items ('mean_loo', which a training pair
    can leave its own item out of exactly)."""
    block = user_item_block(bipartite, dataset.num_users)
    if history == "normalised":
        return block
    degree = np.bincount(dataset.train[:, 0], minlength=dataset.num_users).astype(np.float64)
    receivers = np.asarray(block.receivers)
    return block._replace(edges=(1.0 / np.maximum(degree[receivers], 1.0)).astype(np.float32))


def loss_config(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """The plain values the loss and scoring read from a model config."""
    return {"temperature": float(cfg.router_temperature), "top_k": int(cfg.top_k),
            "base_term": bool(cfg.base_term), "reg_weight": float(cfg.reg_weight),
            "dot_scale": float(cfg.expert_dot_scale),
            "align_weight": float(cfg.get("align_weight", 0.0)),
            "align_temperature": float(cfg.get("align_temperature", 0.2)),
            "routing": RoutingWeights(balance=float(cfg.lambda_bal), coverage=float(cfg.lambda_cov),
                                      specialise=float(cfg.lambda_spec))}


def score_bounds(state: dict[str, Any], users: jax.Array, cfg: dict[str, Any]) -> jax.Array:
    """[B, I] upper bounds on ŷ of the users with every item: <h_u, h_i> + |s| bound_u bound_i (one
    [users x items] product), padded for float rounding."""
    user, items = side_rows(state["users"], users), state["items"]
    scale = expert_scale(state["params"], cfg["dot_scale"])
    cheap = user.base @ items.base.T if cfg["base_term"] else jnp.zeros((users.shape[0], items.base.shape[0]))
    width = jnp.abs(scale) * state["user_bound"][users][:, None] * state["item_bound"][None]
    return padded_upper(cheap, width)


def ranked_candidates(module: MAGNET, state: dict[str, Any], users: jax.Array,
                      cfg: dict[str, Any]) -> Callable[[jax.Array], jax.Array]:
    """exact_scores(ids [B, C]) -> ŷ [B, C] of the users with their candidate items (candidate_scores)."""
    user = side_rows(state["users"], users)
    return lambda ids: candidate_scores(module, state["params"], user, state["items"], state["item_experts"], ids,
                                        cfg, state["sparse"])


def magnet_module(cfg: ml_collections.ConfigDict, dataset: InteractionDataset,
                  modalities: tuple[str, ...]) -> MAGNET:
    """The MAGNET module a model config describes (fields added after a run was saved take the spec's)."""
    return MAGNET(num_users=dataset.num_users, num_items=dataset.num_items, modalities=modalities,
                  embed_dim=cfg.embed_dim, n_layers=cfg.n_layers, n_mm_layers=cfg.n_mm_layers, views=cfg.views,
                  view_fusion=cfg.view_fusion, content_view_weight=float(cfg.get("content_view_weight", 0.5)),
                  experts=cfg.experts, moe_fusion=cfg.moe_fusion,
                  router_rank=cfg.router_rank, router_hidden=cfg.router_hidden,
                  expert_scale_init=cfg.expert_scale_init, source_norm=cfg.source_norm,
                  source_scale_init=float(cfg.source_scale_init), modality_input=cfg.modality_input,
                  detach_ids=bool(cfg.detach_ids), history=cfg.history, expert_output=cfg.expert_output,
                  expert_dim=cfg.get("expert_dim"), expert_mlp=bool(cfg.get("expert_mlp", True)),
                  expert_shared_projection=bool(cfg.get("expert_shared_projection", False)),
                  embedding_init=cfg.init, side_view=bool(cfg.get("side_view", False)),
                  detach_experts=bool(cfg.get("detach_experts", False)))


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """MAGNET over the train graph, its content-augmented twin and each modality's kNN item graph."""
    check_config(cfg)
    if cfg.knn_k < 1:
        raise ConfigError(f"model.knn_k: expected >= 1, got {cfg.knn_k}")
    modalities = selected_modalities(cfg, dataset)
    bipartite = user_item_graph(dataset.train, dataset.num_users, dataset.num_items)
    features = modality_features(dataset, modalities, cfg.feature_norm)
    consts = {
        "adjacency": on_device(propagation_graph(bipartite, cfg.propagation)),
        "user_items": on_device(propagation_graph(user_history_graph(bipartite, dataset, cfg.history),
                                                  cfg.propagation)),
        "user_degree": jnp.asarray(np.bincount(dataset.train[:, 0], minlength=dataset.num_users), jnp.float32),
        "item_graphs": {name: item_knn_graph(cfg, dataset, {name: 1.0}) for name in modalities},
        "features": features,
    }
    if cfg.views in ("both", "content"):
        edges = content_edges(dataset, modalities, int(cfg.knn_k), float(cfg.content_img_weight))
        consts["content_adjacency"] = on_device(propagation_graph(content_augmented_graph(
            dataset.train, dataset.num_users, dataset.num_items, edges, float(cfg.content_edge_weight)),
            cfg.propagation))
    module = magnet_module(cfg, dataset, modalities)
    loss_cfg = loss_config(cfg)
    rank_candidates = int(cfg.get("rank_candidates", 0))
    schedule = None
    if cfg.moe_fusion == "router":
        schedule = EntropyTriggeredRouting(**cfg.schedule.to_dict()).as_epoch_schedule()

    def loss(params, consts, batch, rng, axis_name=None, schedule=None):
        return magnet_loss(module, loss_cfg, params, consts, batch, rng, axis_name, schedule)

    def score_state(params, consts, schedule=None):
        nodes = module.apply(params, consts, method=MAGNET.encode)
        users = module.apply(params, nodes, jnp.arange(dataset.num_users), True, method=MAGNET.side)
        items = module.apply(params, nodes, jnp.arange(dataset.num_items) + dataset.num_users, False,
                             method=MAGNET.side)
        sparse = jnp.zeros((), bool) if schedule is None else schedule["rho"] >= 1.0
        return {"params": params, "users": users, "items": items, "sparse": sparse,
                "user_bound": expert_norm_bound(users), "item_bound": expert_norm_bound(items),
                "item_experts": jnp.transpose(items.experts, (1, 0, 2)).reshape(dataset.num_items, -1)}

    def block_scores(state, user: Side, sparse: bool) -> jax.Array:
        base, dots = pair_dots(user, state["items"], outer=True)
        logits = router_logits(module, state["params"], user, state["items"], outer=True)
        mixed = gated_dots(dots, None) if logits is None else gated_mixture(
            logits, dots, loss_cfg["temperature"], loss_cfg["top_k"], sparse)
        return combined_scores(base, mixed, loss_cfg["base_term"], expert_scale(state["params"], loss_cfg["dot_scale"]))

    def score_fn(state, users):
        user = side_rows(state["users"], users)
        # One routing mode per pass: the branch not taken costs nothing.
        return jax.lax.cond(state["sparse"], lambda u: block_scores(state, u, True),
                            lambda u: block_scores(state, u, False), user)

    def top_k_fn(state, users, exclude, k):
        """score_fn's top k, exactly, scoring only the best rank_candidates items by bound (eval/pruning.py)."""
        return bounded_top_k(score_bounds(state, users, loss_cfg), exclude,
                             ranked_candidates(module, state, users, loss_cfg), lambda: score_fn(state, users), k,
                             rank_candidates)

    def route(params, consts, schedule, users, items):
        nodes = module.apply(params, consts, method=MAGNET.encode)
        user = module.apply(params, nodes, users, True, method=MAGNET.side)
        item = module.apply(params, nodes, items + dataset.num_users, False, method=MAGNET.side)
        sparse = jnp.zeros((), bool) if schedule is None else schedule["rho"] >= 1.0
        return jnp.stack(pair_gates(module, params, user, item, loss_cfg["temperature"], loss_cfg["top_k"],
                                    sparse, outer=False), axis=-1)

    def without_experts(params):
        inner = dict(params["params"], expert_scale=jnp.zeros((), jnp.float32))
        return dict(params, params=inner)

    sources = ("behaviour",) + modalities
    labels = tuple(f"{role}/{sources[index % len(sources)]}" for index, role in
                   ((i, ROLES[i // len(sources)]) for i in range(module.num_experts)))
    return GraphModel(init=compiled_init(module, consts), loss=loss, score_state=score_state, consts=consts,
                      score_fn=score_fn, top_k_fn=top_k_fn if rank_candidates else None, schedule=schedule,
                      route=route if cfg.moe_fusion == "router" else None,
                      expert_labels=labels if cfg.experts == "template" else
                      tuple(f"expert {e}" for e in range(module.num_experts)),
                      without_experts=without_experts if cfg.expert_scale_init is not None else None)
