"""DropoutNet and CLCRec: they learn cold items, how each scores a cold item, their losses against numpy
references, and the one-line errors."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config_files import load_config_file
from mmjax.data import InteractionDataset, make_synthetic
from mmjax.data.cold import cold_item_split
from mmjax.errors import ConfigError, DataError
from mmjax.models import build_model
from mmjax.models.clcrec import hybrid_rows, is_train_pair
from mmjax.models.dropoutnet import dropout_keep
from mmjax.train.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_MODEL = {"dropoutnet": dict(embed_dim=16, hidden=(32, 16)),
               "clcrec": dict(embed_dim=16, encoder_hidden=32, num_negatives=16)}


def small_config(model, users=400, items=400, epochs=20, **fields):
    """configs/<model>.py on a small synthetic dataset, evaluated every 5 epochs."""
    config = load_config_file(os.path.join(ROOT, "configs", f"{model}.py"))
    config.data.synthetic.num_users = users
    config.data.synthetic.num_items = items
    config.train.num_epochs = epochs
    config.train.batch_size = 1024
    config.train.learning_rate = 0.01
    config.train.progress = "none"
    config.eval.every = 5
    config.eval.ks = (10, 20)
    for key, value in {**SMALL_MODEL[model], **fields}.items():
        config.model[key] = value
    return config


def cold_dataset(users=60, items=50):
    data = make_synthetic(num_users=users, num_items=items, latent_dim=4, mean_interactions=8.0, num_categories=3,
                          modalities=dict(image=(6, 0.5), audio=(4, 1.0)), seed=0)
    return cold_item_split(data, 0.2, 7)


def toy_batch(dataset, size=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = dataset.train[rng.integers(len(dataset.train), size=size)]
    weights = np.ones(size, np.float32)
    weights[-2:] = 0.0  # padding rows
    return {"users": jnp.asarray(rows[:, 0]), "positives": jnp.asarray(rows[:, 1]),
            "negatives": jnp.asarray(rng.integers(dataset.num_items, size=size), jnp.int32),
            "weights": jnp.asarray(weights)}


@pytest.mark.parametrize("model", ["dropoutnet", "clcrec"])
def test_trains_on_the_cold_start_protocol_and_beats_random_on_cold_items(model, tmp_path):
    config = small_config(model)
    results = train_and_evaluate(config, str(tmp_path))
    cold = 0.2 * config.data.synthetic.num_items
    # a random ranking of the cold candidates has expected recall@10 = 10 / 80 = 0.125
    assert results["test"]["recall@10"] > 2.5 * 10 / cold, results["test"]
    assert {"test_warm", "test_hybrid"} <= set(results)
    with open(tmp_path / "metrics.jsonl") as f:
        losses = [json.loads(line)["loss"] for line in f]
    assert len(losses) == config.train.num_epochs and losses[-1] < 0.95 * losses[0], losses


def dropoutnet_numpy(params, consts, keep):
    """The towers of DropoutNet in numpy: (Dense -> whole-table BatchNorm -> tanh) per width, then Dense."""
    p = {k: jax.tree_util.tree_map(np.asarray, v) for k, v in params["params"].items()}

    def tower(x, layers):
        names = sorted((k for k in layers if k.startswith("Dense")), key=lambda k: int(k.split("_")[1]))
        for index, name in enumerate(names):
            x = x @ layers[name]["kernel"] + layers[name]["bias"]
            if index < len(names) - 1:
                norm = layers[f"TableNorm_{index}"]
                x = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) * norm["scale"] + norm["bias"]
                x = np.tanh(x)
        return x

    items = np.concatenate([p["item_embedding"] * keep[:, None], np.asarray(consts.content)], axis=1)
    return tower(p["user_embedding"], p["user_tower"]), tower(items, p["item_tower"])


def test_dropoutnet_scores_are_the_towers_and_a_cold_item_ignores_its_preference_input():
    split = cold_dataset()
    config = small_config("dropoutnet", hidden=(8, 6), embed_dim=5).model
    model = build_model(config, split.dataset)
    params = model.init(jax.random.PRNGKey(0))
    params["params"]["item_tower"]["TableNorm_0"]["bias"] = jnp.full((8,), 0.3)  # off its zero init
    users, items = jax.jit(model.score_state)(params, model.consts)
    is_warm = np.asarray(model.consts.is_warm)
    np.testing.assert_array_equal(is_warm, split.dataset.item_train_counts() > 0)
    assert not is_warm[split.cold_items].any()
    expected_users, expected_items = dropoutnet_numpy(params, model.consts, is_warm.astype(np.float32))
    np.testing.assert_allclose(users, expected_users, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(items, expected_items, rtol=1e-4, atol=1e-6)

    def with_item_rows(rows, noise):
        table = params["params"]["item_embedding"]
        moved = jax.tree_util.tree_map(lambda x: x, params)
        moved["params"]["item_embedding"] = table.at[rows].add(noise * jnp.ones_like(table[rows]))
        return moved

    cold, warm = np.flatnonzero(~is_warm), np.flatnonzero(is_warm)[:3]
    np.testing.assert_array_equal(jax.jit(model.score_state)(with_item_rows(cold, 5.0), model.consts)[1], items)
    assert not np.allclose(jax.jit(model.score_state)(with_item_rows(warm, 5.0), model.consts)[1][warm], items[warm])
    feeding_mf = build_model(small_config("dropoutnet", hidden=(8, 6), embed_dim=5, cold_preference="mf").model,
                             split.dataset)
    moved = jax.jit(feeding_mf.score_state)(with_item_rows(cold, 5.0), model.consts)[1]
    assert not np.allclose(moved[cold], jax.jit(feeding_mf.score_state)(params, model.consts)[1][cold])


def test_dropoutnet_loss_is_bpr_and_emb_loss_on_mf_plus_mse_of_the_towers_to_mf_scores():
    split = cold_dataset()
    data = split.dataset
    model = build_model(small_config("dropoutnet", hidden=(8, 6), embed_dim=5, reg_weight=0.3,
                                     dropoutnet_weight=2.0, input_dropout=0.5).model, data)
    params = model.init(jax.random.PRNGKey(1))
    batch = toy_batch(data)
    rng = jax.random.PRNGKey(4)
    loss, parts = jax.jit(model.loss, static_argnums=4)(params, model.consts, batch, rng, None)
    keep = np.asarray(dropout_keep(rng, data.num_items, 0.5))
    assert keep.sum() == data.num_items - round(0.5 * data.num_items)
    tower_users, tower_items = dropoutnet_numpy(params, model.consts, keep)
    u_table, i_table = (np.asarray(params["params"][k], np.float64) for k in ("user_embedding", "item_embedding"))
    real = np.asarray(batch["weights"]) > 0
    users, pos, neg = (np.asarray(batch[k])[real] for k in ("users", "positives", "negatives"))
    target_pos = np.sum(u_table[users] * i_table[pos], 1)
    target_neg = np.sum(u_table[users] * i_table[neg], 1)
    bpr = np.mean(np.log1p(np.exp(-(target_pos - target_neg))))
    reg = sum(np.linalg.norm(t) for t in (u_table[users], i_table[pos], i_table[neg])) / real.sum()
    mse = np.mean(np.concatenate([np.sum(tower_users[users] * tower_items[pos], 1) - target_pos,
                                  np.sum(tower_users[users] * tower_items[neg], 1) - target_neg]) ** 2)
    np.testing.assert_allclose([parts["bpr"], parts["reg"], parts["mse"]], [bpr, reg, mse], rtol=1e-4)
    np.testing.assert_allclose(loss, bpr + 0.3 * reg + 2.0 * mse, rtol=1e-4)
    # the stop-gradients: the MSE moves the towers only, BPR and EmbLoss the MF tables only
    mse_grads, bpr_grads = (jax.jit(jax.grad(lambda p, part=part: model.loss(p, model.consts, batch, rng, None)[1][part]))(
        params)["params"] for part in ("mse", "bpr"))
    for name in ("user_embedding", "item_embedding"):
        assert not np.any(mse_grads[name]) and np.any(bpr_grads[name])
    for name in ("user_tower", "item_tower"):
        assert all(np.any(g) for g in jax.tree_util.tree_leaves(mse_grads[name]))
        assert not any(np.any(g) for g in jax.tree_util.tree_leaves(bpr_grads[name]))


def content_of(dataset, items, modalities=("audio", "image")):
    """The rows CLCRec encodes: each modality L2-normalised, in sorted name order."""
    parts = [np.asarray(dataset.features[m])[items] for m in modalities]
    return np.concatenate([x / np.linalg.norm(x, axis=1, keepdims=True) for x in parts], axis=1)


def encoder_numpy(params, content):
    p = jax.tree_util.tree_map(np.asarray, params["params"])
    hidden = content @ p["encoder_hidden"]["kernel"] + p["encoder_hidden"]["bias"]
    hidden = np.where(hidden > 0, hidden, 0.01 * hidden)
    return hidden @ p["encoder_out"]["kernel"] + p["encoder_out"]["bias"]


def test_clcrec_scores_warm_items_by_id_and_cold_items_by_their_content():
    split = cold_dataset()
    data = split.dataset
    config = small_config("clcrec").model
    model = build_model(config, data)
    params = model.init(jax.random.PRNGKey(0))
    users, items = jax.jit(model.score_state)(params, model.consts)
    # warm = with a train interaction: every cold item, and here a few others whose rows all fell in valid/test
    is_warm = np.asarray(model.consts.is_warm)
    np.testing.assert_array_equal(is_warm, data.item_train_counts() > 0)
    cold, warm = np.flatnonzero(~is_warm), np.flatnonzero(is_warm)
    assert set(split.cold_items) <= set(cold)
    np.testing.assert_array_equal(users, params["params"]["user_embedding"])
    np.testing.assert_array_equal(items[warm], params["params"]["item_embedding"][warm])
    np.testing.assert_allclose(items[cold], encoder_numpy(params, content_of(data, cold)), rtol=1e-4, atol=1e-6)
    # new features for one cold and one warm item: only the cold item's vector (and scores) move
    changed = {m: np.array(x) for m, x in data.features.items()}
    for m in changed:
        changed[m][[cold[0], warm[0]]] = np.random.default_rng(1).normal(size=(2, changed[m].shape[1]))
    consts = build_model(config, dataclasses.replace(data, features=changed)).consts
    new_users, new_items = jax.jit(model.score_state)(params, consts)
    moved = np.flatnonzero(np.any(np.asarray(new_items) != np.asarray(items), axis=1))
    assert list(moved) == [cold[0]]
    assert not np.allclose((new_users @ new_items.T)[:, cold[0]], (users @ items.T)[:, cold[0]])


def test_clcrec_loss_matches_a_numpy_reference():
    split = cold_dataset()
    data = split.dataset
    model = build_model(small_config("clcrec", num_negatives=20, temperature=0.7, lambda_weight=0.3,
                                     hybrid_ratio=0.5, reg_weight=0.2).model, data)
    params = model.init(jax.random.PRNGKey(2))
    batch = toy_batch(data)
    rng = jax.random.PRNGKey(5)
    loss, parts = jax.jit(model.loss, static_argnums=4)(params, model.consts, batch, rng, None)
    # the loss's own draws, regenerated: 20 warm negatives per row and the hybrid rows
    negative_rng, hybrid_rng = jax.random.split(rng)
    warm = np.flatnonzero(data.item_train_counts() > 0)
    np.testing.assert_array_equal(model.consts.warm_items, warm)
    draws = warm[np.asarray(jax.random.randint(negative_rng, (12, 20), 0, len(warm)))]
    hybrid = np.asarray(hybrid_rows(hybrid_rng, (12, 21), 0.5))
    assert np.isin(draws, warm).all()
    train = {tuple(p) for p in data.train}
    users_all = np.asarray(batch["users"])
    items = np.concatenate([np.asarray(batch["positives"])[:, None], draws], axis=1)
    valid = np.array([[j == 0 or (u, i) not in train for j, i in enumerate(row)] for u, row in zip(users_all, items)])
    assert (~valid).any()  # some draws are the user's own train items, and are masked
    p = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), params["params"])
    u, v = p["user_embedding"][users_all], p["item_embedding"]
    c = encoder_numpy(params, content_of(data, np.arange(data.num_items)))

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def nll(logits):
        logits = np.where(valid, logits, -np.inf)
        return -(logits[:, 0] - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1)) - logits.max(1))

    item_content = nll(np.einsum("bd,bkd->bk", unit(v[items[:, 0]]), unit(c[items])) / 0.7)
    mixed = np.where(hybrid[..., None], c[items], v[items])
    user_item = nll(np.einsum("bd,bkd->bk", u, mixed) / 0.7)
    real = np.asarray(batch["weights"]) > 0
    reg = 0.5 * (np.linalg.norm(u, axis=1)[real].mean() + np.linalg.norm(v[items], axis=2)[real].mean())
    np.testing.assert_allclose([parts["item_content"], parts["user_item"], parts["reg"]],
                               [item_content[real].mean(), user_item[real].mean(), reg], rtol=1e-4)
    np.testing.assert_allclose(loss, 0.3 * item_content[real].mean() + 0.7 * user_item[real].mean() + 0.2 * reg,
                               rtol=1e-4)
    grads = jax.jit(jax.grad(lambda q: model.loss(q, model.consts, batch, rng, None)[0]))(params)["params"]
    assert all(np.isfinite(g).all() and np.any(g) for g in jax.tree_util.tree_leaves(grads))


def test_clcrec_helpers():
    keys = jnp.asarray(np.sort([0 * 7 + 3, 1 * 7 + 0, 2 * 7 + 6]).astype(np.int32))
    found = is_train_pair(keys, jnp.array([[0], [1], [2]]), jnp.array([[3, 4], [0, 6], [6, 0]]), 7)
    np.testing.assert_array_equal(found, [[True, False], [True, False], [True, False]])
    share = float(jnp.mean(hybrid_rows(jax.random.PRNGKey(0), (200, 100), 0.5)))
    assert abs(share - (1 - np.exp(-0.5))) < 0.01


@pytest.mark.parametrize("model, field, value", [
    ("dropoutnet", "input_dropout", 1.0), ("dropoutnet", "hidden", (64, 0)), ("dropoutnet", "norm", "group"),
    ("dropoutnet", "cold_preference", "mean"), ("dropoutnet", "dropoutnet_weight", -1.0),
    ("dropoutnet", "feature_norm", "max"), ("dropoutnet", "modalities", ("text",)),
    ("clcrec", "num_negatives", 0), ("clcrec", "temperature", 0.0), ("clcrec", "lambda_weight", 1.5),
    ("clcrec", "hybrid_ratio", -0.1), ("clcrec", "encoder_hidden", 0), ("clcrec", "init", "zeros"),
])
def test_a_bad_config_value_is_a_one_line_config_error(model, field, value):
    config = small_config(model, **{field: value}).model
    with pytest.raises(ConfigError, match=f"model.{field}") as error:
        build_model(config, cold_dataset().dataset)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("model", ["dropoutnet", "clcrec"])
def test_a_dataset_without_features_is_a_data_error(model):
    data = cold_dataset().dataset
    no_features = InteractionDataset(name="ids_only", num_users=data.num_users, num_items=data.num_items,
                                     train=data.train, valid=data.valid, test=data.test, features={})
    with pytest.raises(DataError, match="at least 1 modality"):
        build_model(small_config(model).model, no_features)
