"""CLCRec (Wei et al., MM'21, "Contrastive Learning for Cold-Start Recommendation") as ColdRec runs it.

Users and items have free ID vectors U [n_u, D], V [n_i, D] (Xavier-uniform); a content encoder
g(x) = W_2 LeakyReLU_0.01(W_1 x + b_1) + b_2 (hidden width model.encoder_hidden, PyTorch's default
init) maps item content x_i (every selected modality L2-normalised per row, model.feature_norm, and
concatenated in sorted name order) to D. Each train pair (u, i+) gets K = model.num_negatives negatives
i_1..i_K from the warm items (items with a train interaction), drawn inside the loss; with i_0 = i+:
- item-content contrast L_ic = -log softmax_j(cos(V_{i+}, g(x_{i_j})) / τ) at j = 0;
- user-item contrast L_ui = -log softmax_j(U_u · m_j / τ) at j = 0, where m_j is V_{i_j}, or g(x_{i_j})
  for the rows a hybrid draw picks (round-down(ρ · B(K+1)) draws with replacement over the batch's
  flat rows, ρ = model.hybrid_ratio, so ≈ 1 - e^-ρ of the rows, positives included);
- L = λ L_ic + (1 - λ) L_ui + reg_weight · ½ (mean_rows |U_u| + mean_rows |V_{i_j}|) with unsquared
  norms over all B(K+1) rows (λ = model.lambda_weight, τ = model.temperature).
Scores: U_u · V_i for warm items, U_u · g(x_i) for cold items (no train interaction), per the consts'
is_warm mask; the cold views rank cold items only, so they see the encoder alone.

Decisions [our choice]:
- Negatives are drawn uniformly WITH replacement from the warm items (ColdRec and the original draw
  without replacement); a draw that is one of u's train items (i+ included) is masked out of both
  softmaxes, as ColdRec's sampler never draws those. The batch's own sampled negative is unused.
- The encoder runs over the whole item table once per step, and each logit is read from a [B, N] table of
  scores (u · V, u · g(x), cos(V_{i+}, g(x))) at the drawn columns: the same values as gathering the
  B(1 + K) rows, much cheaper when N < B(1 + K) (no [B, 1 + K, D] gathers and scatters).
- Under data parallelism the draws are folded with the device index, so shards draw independently.
- ColdRec feeds the raw content matrix; the original (and this default) L2-normalises each modality.
- The unused layers of both codes (an MLP and attention weights no loss reads) are left out.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn

from mmjax.data import InteractionDataset
from mmjax.data.dataset import pair_keys
from mmjax.errors import ConfigError, DataError
from mmjax.models.base import GraphModel, dot_scores, compiled_init
from mmjax.models.initializers import embedding_initializer
from mmjax.models.inputs import selected_modalities
from mmjax.models.vbpr import item_content
from mmjax.nn.linear import TorchLinear
from mmjax.train.losses import batch_sum, l2_normalize

MAX_KEY = 2**31 - 1  # train keys u * n_i + i are int32 on device


class CLCRecInputs(NamedTuple):
    """What CLCRec reads, built once."""

    content: jax.Array  # float32 [N, d_c]: the items' normalised modality features side by side
    is_warm: jax.Array  # bool [N]: the item has a train interaction (scored by its ID vector)
    warm_items: jax.Array  # int32 [n_w]: the negatives' pool
    train_keys: jax.Array  # int32 sorted [T]: u * N + i of every train pair, to mask negatives u has


class CLCRec(nn.Module):
    """(U [n_u, D], V [N, D], g(content) [N, D])."""

    num_users: int
    num_items: int
    embed_dim: int = 64
    encoder_hidden: int = 256
    embedding_init: str = "xavier_uniform"

    @nn.compact
    def __call__(self, content: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        initializer = embedding_initializer(self.embedding_init)
        users = self.param("user_embedding", initializer, (self.num_users, self.embed_dim), jnp.float32)
        items = self.param("item_embedding", initializer, (self.num_items, self.embed_dim), jnp.float32)
        hidden = nn.leaky_relu(TorchLinear(self.encoder_hidden, name="encoder_hidden")(content), 0.01)
        return users, items, TorchLinear(self.embed_dim, name="encoder_out")(hidden)


def is_train_pair(train_keys: jax.Array, users: jax.Array, items: jax.Array, num_items: int) -> jax.Array:
    """bool, items' shape: whether (users, items) (users broadcast) is a train interaction."""
    keys = (users * num_items + items).astype(jnp.int32)
    found = jnp.searchsorted(train_keys, keys)
    return train_keys[jnp.minimum(found, train_keys.shape[0] - 1)] == keys


def contrast(logits: jax.Array, valid: jax.Array) -> jax.Array:
    """[B]: -log softmax at column 0 of logits [B, 1 + K], invalid columns left out."""
    return -jax.nn.log_softmax(jnp.where(valid, logits, -jnp.inf), axis=-1)[:, 0]


def row_norm(x: jax.Array) -> jax.Array:
    """|x| over the last axis, with a zero (not NaN) gradient at a zero row."""
    squares = jnp.sum(jnp.square(x), axis=-1)
    return jnp.where(squares > 0, jnp.sqrt(jnp.where(squares > 0, squares, 1.0)), 0.0)


def hybrid_rows(rng: jax.Array, shape: tuple[int, int], ratio: float) -> jax.Array:
    """bool [B, 1 + K]: the rows hit by round-down(ratio · B(1 + K)) uniform draws with replacement."""
    size = shape[0] * shape[1]
    hits = jax.random.randint(rng, (int(ratio * size),), 0, size)
    return jnp.zeros(size, bool).at[hits].set(True).reshape(shape)


def clcrec_inputs(cfg: ml_collections.ConfigDict, dataset: InteractionDataset,
                  modalities: tuple[str, ...]) -> CLCRecInputs:
    """Content, the warm mask and pool, and the sorted train keys; DataError without warm items."""
    is_warm = dataset.item_train_counts() > 0
    if not is_warm.any():
        raise DataError(f"dataset {dataset.name!r}: CLCRec needs warm items (with train interactions), found none")
    if dataset.num_users * dataset.num_items > MAX_KEY:
        raise DataError(f"dataset {dataset.name!r}: {dataset.num_users} users x {dataset.num_items} items overflow "
                        "CLCRec's int32 train keys")
    keys = np.sort(pair_keys(dataset.train, dataset.num_items)).astype(np.int32)
    return CLCRecInputs(content=item_content(dataset, modalities, cfg.get("feature_norm", "l2")),
                        is_warm=jnp.asarray(is_warm), warm_items=jnp.asarray(np.flatnonzero(is_warm), jnp.int32),
                        train_keys=jnp.asarray(keys))


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """One-line ConfigError for the first CLCRec field out of range."""
    if cfg.num_negatives < 1:
        raise ConfigError(f"model.num_negatives: expected >= 1, got {cfg.num_negatives}")
    if cfg.temperature <= 0:
        raise ConfigError(f"model.temperature: expected > 0, got {cfg.temperature}")
    if not 0.0 <= cfg.lambda_weight <= 1.0:
        raise ConfigError(f"model.lambda_weight: expected a weight in [0, 1], got {cfg.lambda_weight}")
    if not 0.0 <= cfg.hybrid_ratio <= 1.0:
        raise ConfigError(f"model.hybrid_ratio: expected a share in [0, 1], got {cfg.hybrid_ratio}")
    if cfg.encoder_hidden < 1:
        raise ConfigError(f"model.encoder_hidden: expected >= 1, got {cfg.encoder_hidden}")


def build(cfg: ml_collections.ConfigDict, dataset: InteractionDataset) -> GraphModel:
    """CLCRec on the selected modalities (>= 1, else DataError): ID vectors for warm items, g(x) for cold."""
    check_config(cfg)
    embedding_initializer(cfg.init)  # a bad model.init fails here, at build time
    inputs = clcrec_inputs(cfg, dataset, selected_modalities(cfg, dataset))
    module = CLCRec(num_users=dataset.num_users, num_items=dataset.num_items, embed_dim=int(cfg.embed_dim),
                    encoder_hidden=int(cfg.encoder_hidden), embedding_init=cfg.init)
    num_negatives, temperature = int(cfg.num_negatives), float(cfg.temperature)
    lam, ratio, reg_weight = float(cfg.lambda_weight), float(cfg.hybrid_ratio), float(cfg.reg_weight)

    def loss(params, consts, batch, rng, axis_name=None):
        if axis_name is not None:
            rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
        negative_rng, hybrid_rng = jax.random.split(rng)
        users, item_ids, content = module.apply(params, consts.content)
        batch_users, weights = batch["users"], batch["weights"]
        draws = consts.warm_items[jax.random.randint(negative_rng, (batch_users.shape[0], num_negatives), 0,
                                                     consts.warm_items.shape[0])]
        items = jnp.concatenate([batch["positives"][:, None], draws], axis=1)  # [B, 1 + K], column 0 = i+
        valid = jnp.concatenate([jnp.ones_like(draws[:, :1], bool),
                                 ~is_train_pair(consts.train_keys, batch_users[:, None], draws, dataset.num_items)], 1)
        user_rows, positive_ids = users[batch_users], item_ids[batch["positives"]]
        # every logit is a dot product with a table row: score the [B, N] tables, then pick the [B, 1 + K] columns
        cosines = l2_normalize(positive_ids) @ l2_normalize(content).T
        item_logits = jnp.take_along_axis(cosines, items, axis=1) / temperature
        by_id = jnp.take_along_axis(user_rows @ item_ids.T, items, axis=1)
        by_content = jnp.take_along_axis(user_rows @ content.T, items, axis=1)
        user_logits = jnp.where(hybrid_rows(hybrid_rng, items.shape, ratio), by_content, by_id) / temperature
        count = jnp.maximum(batch_sum(weights, axis_name), 1.0)

        def mean(values):
            return batch_sum(values * weights, axis_name) / count

        parts = {"item_content": mean(contrast(item_logits, valid)), "user_item": mean(contrast(user_logits, valid)),
                 "reg": 0.5 * (mean(row_norm(user_rows)) + mean(jnp.mean(row_norm(item_ids)[items], axis=1)))}
        total = lam * parts["item_content"] + (1.0 - lam) * parts["user_item"] + reg_weight * parts["reg"]
        return total, parts

    def score_state(params, consts):
        users, item_ids, content = module.apply(params, consts.content)
        return users, jnp.where(consts.is_warm[:, None], item_ids, content)

    return GraphModel(init=compiled_init(module, inputs.content), loss=loss,
                      score_state=score_state, consts=inputs, score_fn=dot_scores)
