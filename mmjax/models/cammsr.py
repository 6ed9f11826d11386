"""CAMMSR: category-guided attentive mixture of experts for multimodal sequential recommendation
(specs/cammsr.md; §0b, the paper's framework figure, is the default `model.camoe=figure`).

Figure form, per modality stream m (ID, and every feature modality the data has and model.modalities keeps):

    e_m(i)   = E[i] (ID) or W_m x_m(i) + b_m (a frozen feature)      item level, [N, d]
    e_m,t    = e_m(i_t) + P[pos_t]                                    position added per stream, before CAMoE
    ê_m,t    = Σ_k α_k h_k(e_m,t),  h_k = K generic 2-layer GELU experts shared by all streams,
               α = softmax_k((W_q e) · (W_k h_k) / sqrt(d))           the attentive gate (`gate=attentive`)
    p_m(i)   = softmax(W_c^m e_m(i))                                  category predictor, item level
    w_m(i)   = sigmoid(Σ_c p_m,c(i) v_m,c)                            category-guided weight: each category
                                                                      has its own weight for the stream
    ē_m,t    = e_m,t + w_m(i_t) · ê_m,t                               a residual, three streams stay three
    Z_m      = CausalEncoder(Dropout(DyT(ē_m)))                       one encoder shared by the streams
    score    = Σ_m <Z_m at the last item, ē_m(j)> (`score_mode=sum`) or <mean_m Z_m, mean_m ē_m(j)> (`mean`)
    L        = CE(next item) + cat_weight · CE(p_m(i), category(i)) + swap_weight · MSCL

MSCL (modality-swap contrast): two streams exchange their CAMoE outputs at a random share `swap_ratio` of
the real positions (complementary swap), both swapped sequences go through the encoder, and InfoNCE pulls
their last states together (in-batch negatives, same-target rows masked, symmetrised). The swapped pair
is `swap_modalities` (default: the first two feature streams, else ID and the only feature stream).

`model.camoe=subsets` is the earlier reconstruction (spec §3): experts over fixed modality subsets of
[e_id; e_text; e_image] (all non-empty subsets of the streams, or `experts=uni`), an optional self-attention
among the experts, pooling by a query built from the soft predicted category, one fused item vector z(i)
used as the sequence token (+ P) and as the candidate; MSCL swaps the two content inputs before CAMoE and
contrasts the original with the swapped sequence. `use_moe=False` is either form without experts (ē = e,
or z = mean of the streams): the w/o CAMoE ablation.

Modalities the data lacks are dropped with what depends on them (the log says what): on a text-only
dataset the streams are ID and text, and MSCL swaps those two.
"""

from __future__ import annotations

import itertools
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.data.sequences import PAD_ID
from mmjax.errors import ConfigError, DataError
from mmjax.models.base import SequenceModel
from mmjax.models.inputs import modality_features, selected_modalities
from mmjax.models.sasrec import last_states, next_item_cross_entropy, query_rows
from mmjax.nn.transformer import DENSE_INIT, CausalEncoder, attention_mask, make_norm, window_rows
from mmjax.train.losses import batch_sum, info_nce

logger = logging.getLogger(__name__)

CAMOE_FORMS = ("figure", "subsets")
GATES = ("attentive", "linear")
SCORE_MODES = ("sum", "mean")
EXPERT_SETS = ("all", "uni")
ID_STREAM = "id"


class Experts(nn.Module):
    """K two-layer GELU MLPs applied to the same input: [..., d] -> [..., K, d] (dropout inside)."""

    num_experts: int
    hidden: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        width = x.shape[-1]
        w1 = self.param("w1", DENSE_INIT, (self.num_experts, width, self.hidden))
        b1 = self.param("b1", nn.initializers.zeros, (self.num_experts, self.hidden))
        w2 = self.param("w2", DENSE_INIT, (self.num_experts, self.hidden, width))
        b2 = self.param("b2", nn.initializers.zeros, (self.num_experts, width))
        h = jax.nn.gelu(jnp.einsum("...d,kdh->...kh", x, w1) + b1, approximate=False)
        h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
        return jnp.einsum("...kh,khd->...kd", h, w2) + b2


class FigureCAMoE(nn.Module):
    """ê = Σ_k α_k h_k(e): generic experts and an attentive (or linear) gate; returns (ê, α)."""

    num_experts: int
    expert_hidden: int
    expert_dropout: float
    gate: str = "attentive"
    temperature: float = 1.0

    @nn.compact
    def __call__(self, e: jax.Array, deterministic: bool) -> tuple[jax.Array, jax.Array]:
        width = e.shape[-1]
        h = Experts(self.num_experts, self.expert_hidden, self.expert_dropout, name="experts")(e, deterministic)
        if self.gate == "attentive":
            query = nn.Dense(width, kernel_init=DENSE_INIT, name="query")(e)
            keys = nn.Dense(width, kernel_init=DENSE_INIT, name="key")(h)
            logits = jnp.einsum("...d,...kd->...k", query, keys) / jnp.sqrt(float(width))
        else:
            logits = nn.Dense(self.num_experts, kernel_init=DENSE_INIT, name="gate")(e)
        alpha = jax.nn.softmax(logits / self.temperature, axis=-1)
        return jnp.einsum("...k,...kd->...d", alpha, h), alpha


class CategoryWeight(nn.Module):
    """Item-level category predictor of one stream and its guided weight: (logits [N, C], w [N])."""

    num_categories: int
    guided: bool = True

    @nn.compact
    def __call__(self, e: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits = nn.Dense(self.num_categories, kernel_init=DENSE_INIT, name="predictor")(e)
        if not self.guided:  # w/o CG: one learnt weight for every item, the predictor only trains on L_cat
            return logits, jnp.broadcast_to(jax.nn.sigmoid(self.param("weight", nn.initializers.zeros, ())),
                                            e.shape[:-1])
        per_category = self.param("category_weight", nn.initializers.zeros, (self.num_categories,))
        return logits, jax.nn.sigmoid(jax.nn.softmax(logits, axis=-1) @ per_category)


class CAMMSR(nn.Module):
    """Both CAMoE forms over the item streams; see the module docstring."""

    num_items: int
    num_categories: int
    streams: tuple[str, ...]  # 'id' and/or feature modality names, in order
    hidden: int
    max_len: int
    num_layers: int
    num_heads: int
    inner: int
    hidden_dropout: float
    attention_dropout: float
    eps: float
    norm: str
    camoe: str
    use_moe: bool
    num_experts: int
    expert_hidden: int
    expert_dropout: float
    gate: str
    gate_temperature: float
    category_guidance: bool
    score_mode: str
    experts: str
    expert_attention: bool
    input_alpha0: float = 0.5  # DyT's α at the input: the N(0, 0.02) embeddings are far from unit scale

    def setup(self) -> None:
        d = self.hidden
        self.item_embedding = self.param("item_embedding", DENSE_INIT, (self.num_items, d))
        self.projections = {m: nn.Dense(d, kernel_init=DENSE_INIT) for m in self.streams if m != ID_STREAM}
        self.position_embedding = self.param("position_embedding", DENSE_INIT, (self.max_len, d))
        self.input_norm = make_norm(self.norm, self.eps, alpha0=self.input_alpha0)
        self.dropout = nn.Dropout(self.hidden_dropout)
        self.encoder = CausalEncoder(self.num_layers, self.num_heads, self.inner, self.hidden_dropout,
                                     self.attention_dropout, self.norm, self.eps)
        if self.camoe == "figure":
            self.moe = FigureCAMoE(self.num_experts, self.expert_hidden, self.expert_dropout, self.gate,
                                   self.gate_temperature)
            self.category = {m: CategoryWeight(self.num_categories, self.category_guidance) for m in self.streams}
        elif self.camoe == "subsets":
            self.subsets = subset_experts(self.streams, self.experts)
            self.subset_experts = [nn.Sequential([nn.Dense(self.expert_hidden, kernel_init=DENSE_INIT),
                                                  lambda x: jax.nn.gelu(x, approximate=False),
                                                  nn.Dense(d, kernel_init=DENSE_INIT)]) for _ in self.subsets]
            self.expert_norm = make_norm(self.norm, self.eps)
            self.expert_mixer = nn.MultiHeadDotProductAttention(num_heads=2, kernel_init=DENSE_INIT)
            self.category_predictor = nn.Dense(self.num_categories, kernel_init=DENSE_INIT)
            self.category_table = self.param("category_embedding", DENSE_INIT, (self.num_categories, d))
            self.constant_query = self.param("constant_query", DENSE_INIT, (d,))
            self.pool_query = nn.Dense(d, kernel_init=DENSE_INIT)
            self.pool_key = nn.Dense(d, kernel_init=DENSE_INIT)
            self.pool_out = nn.Dense(d, kernel_init=DENSE_INIT)

    # --- item level ------------------------------------------------------------------------------------

    def stream_embeddings(self, features: dict[str, jax.Array]) -> jax.Array:
        """e_m(i) for every stream and item: [M, N, d]."""
        return jnp.stack([self.item_embedding if m == ID_STREAM else self.projections[m](features[m])
                          for m in self.streams])

    def category_weights(self, e: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(category logits [M, N, C], guided weights w [M, N]) of the figure form."""
        logits, weights = zip(*(self.category[m](e[k]) for k, m in enumerate(self.streams)))
        return jnp.stack(logits), jnp.stack(weights)

    def figure_streams(self, e: jax.Array, weights: jax.Array, deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """(ē = e + w · CAMoE(e), α) for stream inputs e [M, ..., d] with weights w [M, ...]."""
        if not self.use_moe:
            return e, jnp.zeros(e.shape[:-1] + (self.num_experts,), e.dtype)
        mixed, alpha = self.moe(e, deterministic)
        return e + weights[..., None] * mixed, alpha

    def fused_items(self, e: jax.Array, swap: jax.Array | None, deterministic: bool) -> tuple[jax.Array, ...]:
        """Subsets form: (z [..., d], category logits [..., C], pooling weights [..., K]) from streams
        e [M, ..., d]; `swap` (bool [...]) exchanges the two content streams (the last two) first."""
        if swap is not None:
            first, second = len(self.streams) - 2, len(self.streams) - 1
            swapped = e.at[first].set(jnp.where(swap[..., None], e[second], e[first]))
            e = swapped.at[second].set(jnp.where(swap[..., None], e[first], e[second]))
        concatenated = jnp.concatenate(list(e), axis=-1)
        logits = self.category_predictor(concatenated)
        if not self.use_moe:
            return e.mean(axis=0), logits, jnp.zeros(e.shape[1:-1] + (1,), e.dtype)
        tokens = jnp.stack([expert(jnp.concatenate([e[k] for k in subset], axis=-1)) +
                            (e[subset[0]] if len(subset) == 1 else 0.0)
                            for expert, subset in zip(self.subset_experts, self.subsets)], axis=-2)
        if self.expert_attention:
            flat = tokens.reshape(-1, *tokens.shape[-2:])
            normed = self.expert_norm(flat)
            flat = flat + self.expert_mixer(normed, normed, deterministic=True)
            tokens = flat.reshape(tokens.shape)
        if self.category_guidance:
            soft = jax.nn.sigmoid(logits)
            query = self.pool_query((soft / (soft.sum(-1, keepdims=True) + 1e-8)) @ self.category_table)
        else:
            query = jnp.broadcast_to(self.pool_query(self.constant_query), tokens.shape[:-2] + (self.hidden,))
        scores = jnp.einsum("...d,...kd->...k", query, self.pool_key(tokens)) / jnp.sqrt(float(self.hidden))
        alpha = jax.nn.softmax(scores / self.gate_temperature, axis=-1)
        return self.pool_out(jnp.einsum("...k,...kd->...d", alpha, tokens)), logits, alpha

    # --- sequence level --------------------------------------------------------------------------------

    def encode(self, x: jax.Array, segments: jax.Array, deterministic: bool) -> jax.Array:
        """Z of token inputs x [S, R, L, d] (S sequences per row, e.g. streams): [S, R, L, d]."""
        streams, rows = x.shape[:2]
        flat = self.dropout(self.input_norm(x.reshape(streams * rows, *x.shape[2:])), deterministic=deterministic)
        mask = jnp.tile(attention_mask(segments), (streams, 1, 1, 1))
        return self.encoder(flat, mask, deterministic).reshape(x.shape)

    def __call__(self, tokens: jax.Array, segments: jax.Array, positions: jax.Array, features: dict[str, jax.Array],
                 deterministic: bool, swap: jax.Array | None = None) -> dict[str, jax.Array]:
        """Everything a step needs from rows of histories: 'z' [M or 1, R, L, d] hidden states, 'items'
        [M or 1, N, d] candidate vectors, 'category_logits', 'alpha' (gate weights), 'weights' (figure: w),
        and with `swap` (bool [R, L]) 'z_swapped' [2, R, L, d] (figure) or [1, R, L, d] (subsets)."""
        e_items = self.stream_embeddings(features)  # [M, N, d]
        padded = jnp.concatenate([jnp.zeros((e_items.shape[0], 1, self.hidden), e_items.dtype), e_items], axis=1)
        e_tokens = padded[:, tokens] + self.position_embedding[positions]  # [M, R, L, d]
        out = {}
        if self.camoe == "figure":
            logits, weights = self.category_weights(e_items)
            padded_weights = jnp.concatenate([jnp.zeros((weights.shape[0], 1), weights.dtype), weights], axis=1)
            items, _ = self.figure_streams(e_items, weights, deterministic)
            streams, alpha = self.figure_streams(e_tokens, padded_weights[:, tokens], deterministic)
            out.update(items=items, category_logits=logits, weights=weights, alpha=alpha,
                       z=self.encode(streams, segments, deterministic))
            if swap is not None:
                first, second = swap_pair(self.streams)
                swapped = jnp.stack([jnp.where(swap[..., None], streams[second], streams[first]),
                                     jnp.where(swap[..., None], streams[first], streams[second])])
                out["z_swapped"] = self.encode(swapped, segments, deterministic)
            return out
        z_items, logits, _ = self.fused_items(e_items, None, deterministic)
        no_position = padded[:, tokens]
        z_tokens, _, alpha = self.fused_items(no_position, None, deterministic)
        x = (z_tokens + self.position_embedding[positions])[None]
        out.update(items=z_items[None], category_logits=logits[None], alpha=alpha,
                   z=self.encode(x, segments, deterministic))
        if swap is not None:
            z_swap, _, _ = self.fused_items(no_position, swap, deterministic)
            out["z_swapped"] = self.encode((z_swap + self.position_embedding[positions])[None], segments,
                                           deterministic)
        return out


def subset_experts(streams: tuple[str, ...], experts: str) -> tuple[tuple[int, ...], ...]:
    """The stream subsets the subsets form's experts read: single streams ('uni'), or every non-empty subset."""
    sizes = (1,) if experts == "uni" else range(1, len(streams) + 1)
    return tuple(subset for size in sizes for subset in itertools.combinations(range(len(streams)), size))


def swap_pair(streams: tuple[str, ...]) -> tuple[int, int]:
    """Indices of the two streams MSCL swaps: the first two feature streams, else ID and the feature stream."""
    content = [k for k, m in enumerate(streams) if m != ID_STREAM]
    if len(content) >= 2:
        return content[0], content[1]
    return 0, 1


def combine_scores(z_last: jax.Array, items: jax.Array, score_mode: str) -> jax.Array:
    """[B, N] scores from per-stream user states [M, B, d] and candidate vectors [M, N, d]."""
    if score_mode == "mean":
        return z_last.mean(axis=0) @ items.mean(axis=0).T
    return jnp.einsum("mbd,mnd->bn", z_last, items)


def noisy_categories(category: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """The item categories with a share `noise` of items given the label of a random other item (spec §4.2)."""
    if noise == 0:
        return category
    rng = np.random.default_rng([seed, 7])
    corrupted = category.copy()
    chosen = rng.choice(len(category), size=int(round(noise * len(category))), replace=False)
    corrupted[chosen] = category[rng.integers(len(category), size=len(chosen))]
    return corrupted


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """ConfigError for the first CAMMSR field out of range (the encoder's fields are SASRec's)."""
    from mmjax.models.sasrec import check_config as check_encoder
    check_encoder(cfg)
    checks = [("camoe", cfg.camoe in CAMOE_FORMS, f"one of {CAMOE_FORMS}"),
              ("gate", cfg.gate in GATES, f"one of {GATES}"),
              ("score_mode", cfg.score_mode in SCORE_MODES, f"one of {SCORE_MODES}"),
              ("experts", cfg.experts in EXPERT_SETS, f"one of {EXPERT_SETS}"),
              ("num_experts", cfg.num_experts >= 1, ">= 1"), ("expert_hidden", cfg.expert_hidden >= 1, ">= 1"),
              ("expert_dropout", 0 <= cfg.expert_dropout < 1, "in [0, 1)"),
              ("gate_temperature", cfg.gate_temperature > 0, "> 0"),
              ("cat_weight", cfg.cat_weight >= 0, ">= 0"), ("swap_weight", cfg.swap_weight >= 0, ">= 0"),
              ("swap_ratio", 0 < cfg.swap_ratio <= 1, "in (0, 1]"),
              ("swap_temperature", cfg.swap_temperature > 0, "> 0"),
              ("category_noise", 0 <= cfg.category_noise < 1, "in [0, 1)")]
    for name, ok, expected in checks:
        if not ok:
            raise ConfigError(f"model.{name}: expected {expected}, got {cfg.get(name)!r}")


def plan_streams(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> tuple[str, ...]:
    """The streams CAMMSR reads, logging the modalities it drops and what goes with them."""
    modalities = selected_modalities(cfg, dataset, minimum=0)
    streams = ((ID_STREAM,) if cfg.use_id else ()) + modalities
    if not streams:
        raise ConfigError("model: CAMMSR needs at least one stream (model.use_id or a feature modality)")
    missing = [m for m in ("text", "image") if m not in modalities]
    if missing:
        logger.info("CAMMSR: %s not in dataset %r (or not in model.modalities); dropped, with %s", missing,
                    dataset.name, "the text-image swap (MSCL swaps ID and " + modalities[0] + ")"
                    if len(modalities) == 1 and cfg.use_id else "their experts and swaps")
    if len(streams) < 2 and cfg.swap_weight > 0:
        logger.info("CAMMSR: one stream only (%s): the modality-swap contrast (MSCL) is off", streams[0])
    if cfg.camoe == "subsets" and len(streams) < 2:
        logger.info("CAMMSR: camoe=subsets with one stream is a single expert")
    logger.info("CAMMSR streams: %s; CAMoE %s; MSCL swaps %s", ", ".join(streams), cfg.camoe,
                "nothing" if len(streams) < 2 or cfg.swap_weight == 0 else
                " and ".join(streams[k] for k in (swap_pair(streams) if cfg.camoe == "figure"
                                                  else (len(streams) - 2, len(streams) - 1))))
    return streams


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> SequenceModel:
    check_config(cfg)
    if dataset.item_category is None and cfg.cat_weight > 0:
        raise DataError(f"model 'cammsr' reads item categories (item_category.npy) for its category loss; dataset "
                        f"{dataset.name!r} has none (set model.cat_weight=0 and model.category_guidance=False "
                        "to run without)")
    streams = plan_streams(cfg, dataset)
    category = np.zeros(dataset.num_items, np.int32) if dataset.item_category is None else \
        noisy_categories(np.asarray(dataset.item_category), float(cfg.category_noise), int(cfg.get("seed", 0)))
    num_categories = int(category.max()) + 1
    modalities = tuple(m for m in streams if m != ID_STREAM)
    consts = {"features": modality_features(dataset, modalities, cfg.get("feature_norm", "none")),
              "category": jnp.asarray(category)}
    module = CAMMSR(num_items=dataset.num_items, num_categories=num_categories, streams=streams,
                    hidden=int(cfg.embed_dim), max_len=int(cfg.max_len), num_layers=int(cfg.num_layers),
                    num_heads=int(cfg.num_heads), inner=int(cfg.inner_size), hidden_dropout=float(cfg.hidden_dropout),
                    attention_dropout=float(cfg.attention_dropout), eps=float(cfg.layer_norm_eps),
                    norm=str(cfg.norm), camoe=str(cfg.camoe), use_moe=bool(cfg.use_moe),
                    num_experts=int(cfg.num_experts),
                    expert_hidden=int(cfg.expert_hidden), expert_dropout=float(cfg.expert_dropout),
                    gate=str(cfg.gate), gate_temperature=float(cfg.gate_temperature),
                    category_guidance=bool(cfg.category_guidance), score_mode=str(cfg.score_mode),
                    experts=str(cfg.experts), expert_attention=bool(cfg.expert_attention),
                    input_alpha0=float(cfg.get("dyt_input_alpha0", 0.5)))
    swap_on = len(streams) >= 2 and cfg.swap_weight > 0
    cat_weight, swap_weight = float(cfg.cat_weight), float(cfg.swap_weight)

    def init(rng):
        history = jnp.ones((1, int(cfg.max_len)), jnp.int32)
        return module.init(rng, history, *window_rows(history, PAD_ID), consts["features"], True)

    def loss(params, consts, batch, rng, axis_name=None):
        dropout_rng, swap_rng = jax.random.split(rng)
        real = batch["segments"] > 0
        swap = (jax.random.uniform(swap_rng, real.shape) < cfg.swap_ratio) & real if swap_on else None
        out = module.apply(params, batch["tokens"], batch["segments"], batch["positions"], consts["features"],
                           False, swap, rngs={"dropout": dropout_rng})
        z_last = jax.vmap(last_states, in_axes=(0, None))(out["z"], batch["last"])
        weights, targets = batch["weights"], batch["target"]
        rec = next_item_cross_entropy(combine_scores(z_last, out["items"], cfg.score_mode), targets, weights,
                                      axis_name)
        labels = consts["category"]
        category_loss = optax.softmax_cross_entropy_with_integer_labels(
            out["category_logits"], jnp.broadcast_to(labels, out["category_logits"].shape[:-1])).mean()
        total, parts = rec, {"ce": rec, "cat": category_loss}
        if cat_weight > 0:
            total = total + cat_weight * category_loss
        if swap_on:
            if "z_swapped" in out and out["z_swapped"].shape[0] == 2:
                views = jax.vmap(last_states, in_axes=(0, None))(out["z_swapped"], batch["last"])
            else:
                views = jnp.stack([z_last.mean(axis=0),
                                   last_states(out["z_swapped"][0], batch["last"])])
            temperature = float(cfg.swap_temperature)
            contrast = 0.5 * (info_nce(views[0], views[1], weights, temperature, axis_name, targets)
                              + info_nce(views[1], views[0], weights, temperature, axis_name, targets))
            total, parts["mscl"] = total + swap_weight * contrast, contrast
        return total, parts

    def score_state(params, consts):
        history = jnp.ones((1, int(cfg.max_len)), jnp.int32)
        out = module.apply(params, history, *window_rows(history, PAD_ID), consts["features"], True)
        return {"params": params, "items": out["items"], "features": consts["features"]}

    def score_fn(state, query):
        tokens, segments, positions, last = query_rows(query)
        out = module.apply(state["params"], tokens, segments, positions, state["features"], True)
        return combine_scores(jax.vmap(last_states, in_axes=(0, None))(out["z"], last), state["items"],
                              cfg.score_mode)

    def inspect(params, consts, history):
        """Per-stream category-guided weights of every item and the gate weights of the history's tokens."""
        out = module.apply(params, history, *window_rows(history, PAD_ID), consts["features"], True)
        return {"streams": streams, "weights": out.get("weights"), "alpha": out["alpha"],
                "category": consts["category"]}

    return SequenceModel(init=init, loss=loss, score_state=score_state, score_fn=score_fn, consts=consts,
                         inspect=inspect)
