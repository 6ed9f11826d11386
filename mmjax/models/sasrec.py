"""SASRec (Kang & McAuley, ICDM 2018) as RecBole 1.2.1 builds it, the sequential protocol's ID baseline.

    e_t   = E[i_t] + P[pos_t]                  item embedding + learnt position (counted from the history start)
    X     = Dropout(LayerNorm(e))              [R, L, d]
    H     = CausalEncoder(X)                   2 post-norm layers, 2 heads, inner 256, GELU, dropout 0.5
    s_u   = H at the history's last item       the user's next-item query
    score = s_u · E[j] for every item j;       loss: full-softmax cross-entropy of the next item

Training rows pack several short histories each (data/sequences.py, PackedRows; attention stays within a
history), which computes exactly what one left-padded window per history would at a fraction of the cost.

The input and output item tables are shared. With `model.modalities` naming feature files, each item's
vector becomes E[i] + Σ_m W_m x_m(i) (a linear projection of each frozen feature, summed in): the plain
fusion baseline a multimodal sequential model must beat. The padding item (id 0 of the windows) has a
zero vector and is never scored. `model.softmax_pad` adds what RecBole's softmax has beyond this: its
padding row is a trainable extra class of the training cross-entropy (never a target, never scored).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.data.sequences import PAD_ID
from mmjax.errors import ConfigError
from mmjax.models.base import SequenceModel
from mmjax.models.inputs import modality_features, selected_modalities
from mmjax.nn.transformer import DENSE_INIT, CausalEncoder, attention_mask, make_norm, window_rows
from mmjax.train.losses import batch_sum


class SASRec(nn.Module):
    """The encoder and the item table; `items()` gives the [num_items, d] table, `__call__` s_u per window."""

    num_items: int
    hidden: int
    max_len: int
    num_layers: int
    num_heads: int
    inner: int
    hidden_dropout: float
    attention_dropout: float
    eps: float
    norm: str = "layernorm"
    modalities: tuple[str, ...] = ()  # feature tables projected and summed into the item vectors
    softmax_pad: bool = False  # a trainable padding class in the training softmax, as RecBole's SASRec has

    def setup(self) -> None:
        self.item_embedding = self.param("item_embedding", DENSE_INIT, (self.num_items, self.hidden))
        self.position_embedding = self.param("position_embedding", DENSE_INIT, (self.max_len, self.hidden))
        if self.softmax_pad:
            self.pad_class = self.param("pad_class", DENSE_INIT, (1, self.hidden))
        self.projections = {name: nn.Dense(self.hidden, kernel_init=DENSE_INIT) for name in self.modalities}
        self.input_norm = make_norm(self.norm, self.eps)
        self.dropout = nn.Dropout(self.hidden_dropout)
        self.encoder = CausalEncoder(self.num_layers, self.num_heads, self.inner, self.hidden_dropout,
                                     self.attention_dropout, self.norm, self.eps)

    def items(self, features: dict[str, jax.Array]) -> jax.Array:
        """[num_items, d]: the ID embedding plus each feature's projection."""
        table = self.item_embedding
        for name in self.modalities:
            table = table + self.projections[name](features[name])
        return table

    def output_table(self, table: jax.Array) -> jax.Array:
        """The classes of the training softmax: the items, then the padding class when softmax_pad is on."""
        return jnp.concatenate([table, self.pad_class]) if self.softmax_pad else table

    def __call__(self, tokens: jax.Array, segments: jax.Array, positions: jax.Array, table: jax.Array,
                 deterministic: bool) -> jax.Array:
        """Hidden states [R, L, d] of rows of histories (ids shifted by one, PAD_ID padding; segments and
        positions as PackedRows) under the item table [N, d]."""
        padded_table = jnp.concatenate([jnp.zeros((1, table.shape[1]), table.dtype), table])
        x = padded_table[tokens] + self.position_embedding[positions]
        x = self.dropout(self.input_norm(x), deterministic=deterministic)
        return self.encoder(x, attention_mask(segments), deterministic)


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """ConfigError for the first out-of-range SASRec field."""
    checks = [("max_len", cfg.max_len >= 2, ">= 2"), ("num_layers", cfg.num_layers >= 1, ">= 1"),
              ("num_heads", cfg.num_heads >= 1 and cfg.embed_dim % cfg.num_heads == 0,
               f">= 1 and dividing embed_dim {cfg.embed_dim}"),
              ("inner_size", cfg.inner_size >= 1, ">= 1"),
              ("hidden_dropout", 0.0 <= cfg.hidden_dropout < 1.0, "in [0, 1)"),
              ("attention_dropout", 0.0 <= cfg.attention_dropout < 1.0, "in [0, 1)"),
              ("layer_norm_eps", cfg.layer_norm_eps > 0, "> 0")]
    for name, ok, expected in checks:
        if not ok:
            raise ConfigError(f"model.{name}: expected {expected}, got {cfg.get(name)!r}")


def last_states(hidden: jax.Array, last: jax.Array) -> jax.Array:
    """[m, d]: the hidden state [R, L, d] at each history's last token (flat index row * L + column)."""
    return hidden.reshape(-1, hidden.shape[-1])[last]


def query_rows(query) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(tokens, segments, positions [R, L], last [B]) of a query block: its packed rows when the view has them
    (eval views do), else its left-padded 'history' windows as one row per query (recommend)."""
    if "tokens" in query:
        return query["tokens"], query["segments"], query["positions"], query["last"]
    history = query["history"]
    rows, length = history.shape
    return (history, *window_rows(history, PAD_ID), (jnp.arange(rows) * length + length - 1).astype(jnp.int32))


def next_item_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                            axis_name: str | None) -> jax.Array:
    """Mean over the global batch's real rows of -log softmax(logits)[target] (full softmax over items)."""
    per_row = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return batch_sum(per_row * weights, axis_name) / jnp.maximum(batch_sum(weights, axis_name), 1.0)


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> SequenceModel:
    check_config(cfg)
    modalities = selected_modalities(cfg, dataset, minimum=0)
    consts = {"features": modality_features(dataset, modalities, cfg.get("feature_norm", "none"))}
    module = SASRec(num_items=dataset.num_items, hidden=int(cfg.embed_dim), max_len=int(cfg.max_len),
                    num_layers=int(cfg.num_layers), num_heads=int(cfg.num_heads), inner=int(cfg.inner_size),
                    hidden_dropout=float(cfg.hidden_dropout), attention_dropout=float(cfg.attention_dropout),
                    eps=float(cfg.layer_norm_eps), norm=str(cfg.get("norm", "layernorm")), modalities=modalities,
                    softmax_pad=bool(cfg.get("softmax_pad", False)))

    def init(rng):
        history = jnp.ones((1, int(cfg.max_len)), jnp.int32)

        def run(module):
            return module(history, *window_rows(history, PAD_ID), module.items(consts["features"]), True)

        return nn.init(run, module)(rng)

    def loss(params, consts, batch, rng, axis_name=None):
        def run(module):
            table = module.items(consts["features"])
            hidden = module(batch["tokens"], batch["segments"], batch["positions"], table, False)
            return last_states(hidden, batch["last"]), module.output_table(table)

        user_vectors, classes = nn.apply(run, module)(params, rngs={"dropout": rng})
        ce = next_item_cross_entropy(user_vectors @ classes.T, batch["target"], batch["weights"], axis_name)
        return ce, {"ce": ce}

    def score_state(params, consts):
        table = nn.apply(lambda m: m.items(consts["features"]), module)(params)
        return {"params": params, "table": table}

    def score_fn(state, query):
        tokens, segments, positions, last = query_rows(query)
        hidden = module.apply(state["params"], tokens, segments, positions, state["table"], True)
        return last_states(hidden, last) @ state["table"].T

    return SequenceModel(init=init, loss=loss, score_state=score_state, score_fn=score_fn, consts=consts)
