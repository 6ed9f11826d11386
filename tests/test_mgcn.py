"""MGCN: forward pass vs dense numpy, MMRec's loss terms, the sharded loss, modalities, errors, learning."""

import importlib.util
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import InteractionDataset, make_synthetic
from mmjax.errors import ConfigError, DataError
from mmjax.graph import dense_adjacency, propagate, propagation_graph, user_item_graph
from mmjax.models import build_model
from mmjax.graph import user_item_block
from mmjax.models.mgcn import build
from mmjax.train.losses import info_nce
from mmjax.train.train import train_and_evaluate

from helpers import small_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2], [2, 3]], dtype=np.int32)
NO_PAIRS = np.zeros((0, 2), dtype=np.int32)


def mgcn_config(**model):
    """configs/mgcn.py on small_config's data and training sizes; `model` overrides config.model."""
    spec = importlib.util.spec_from_file_location("mgcn_config", os.path.join(ROOT, "configs", "mgcn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    small = small_config("mgcn")
    config.data, config.train.batch_size, config.train.num_epochs = small.data, 256, 8
    for key, value in model.items():
        config.model[key] = value
    return config


def small_dataset(names=("image", "text")):
    """30 users, 20 items; every modality 12-d, so that models built on it share compiled shapes."""
    modalities = {name: (12, 0.5 + 0.25 * m) for m, name in enumerate(names)}
    return make_synthetic(num_users=30, num_items=20, mean_interactions=5.0, modalities=modalities, seed=1)


def dense_knn(features, k):
    """MMRec's build_sim + build_knn_normalized_graph(norm_type='sym'), dense, in float64."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = x @ x.T
    kept = np.zeros_like(sim)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    np.put_along_axis(kept, top, np.take_along_axis(sim, top, axis=1), axis=1)
    d = kept.sum(1) ** -0.5
    return d[:, None] * kept * d[None, :]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def linear(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + (np.asarray(p["bias"], np.float64) if "bias" in p else 0)


def reference_forward(p, dataset, modalities, n_ui_layers, n_layers, k):
    """MGCN's forward (MMRec's MGCN.forward generalised to M modalities) in dense numpy."""
    u, i = dataset.num_users, dataset.num_items
    adj = dense_adjacency(user_item_graph(dataset.train, u, i))
    ego = np.concatenate([p["user_embedding"], p["item_embedding"]]).astype(np.float64)
    content = np.mean([np.linalg.matrix_power(adj, l) @ ego for l in range(n_ui_layers + 1)], axis=0)
    views = []
    for name in modalities:
        features = np.asarray(p[f"{name}_features"], np.float64)
        purified = ego[u:] * sigmoid(linear(p[f"{name}_purifier"], linear(p[f"{name}_projection"], features)))
        knn = dense_knn(dataset.features[name].astype(np.float64), k)  # from the raw, not the trained, features
        items = np.linalg.matrix_power(knn, n_layers) @ purified
        views.append(np.concatenate([adj[:u, u:] @ items, items]))
    scores = np.concatenate([linear(p["query_score"], np.tanh(linear(p["query_hidden"], v))) for v in views],
                            axis=1)
    attention = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    common = sum(attention[:, [m]] * v for m, v in enumerate(views))
    specific = [sigmoid(linear(p[f"{name}_preference"], content)) * (v - common)
                for name, v in zip(modalities, views)]
    side = (sum(specific) + common) / (len(views) + 1)
    return content + side, side, content


def numpy_info_nce(view1, view2, temperature):
    v1 = view1 / np.linalg.norm(view1, axis=1, keepdims=True)
    v2 = view2 / np.linalg.norm(view2, axis=1, keepdims=True)
    logits = v1 @ v2.T / temperature
    return np.mean(-np.log(np.exp(np.diag(logits)) / np.exp(logits).sum(1)))


@pytest.mark.parametrize("propagation", ["sparse", "segment_sum"])
def test_forward_equals_dense_reference(propagation):
    dataset = small_dataset()
    cfg = mgcn_config(embed_dim=8, knn_k=4, n_layers=2, propagation=propagation).model
    model = build(cfg, dataset)
    params = model.init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(params["params"]["image_features"], dataset.features["image"])  # the start
    assert "features" not in model.consts  # trained copies only, no frozen one on device
    # As if trained: the projections read the moved tables, the kNN graphs stay those of the raw features.
    params["params"]["text_features"] = params["params"]["text_features"] + 0.5
    final, _, _ = reference_forward(params["params"], dataset, ("image", "text"), n_ui_layers=2, n_layers=2, k=4)
    users, items = model.score_state(params, model.consts)
    np.testing.assert_allclose(np.concatenate([users, items]), final, atol=1e-5)


def test_user_item_block_propagates_r_hat():
    graph = user_item_graph(PAIRS, 3, 4)
    r_hat = dense_adjacency(graph)[:3, 3:]
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    padded = jnp.concatenate([jnp.zeros((3, 5)), jnp.asarray(x)])
    for kind in ("sparse", "segment_sum"):
        block = jax.tree_util.tree_map(jnp.asarray, propagation_graph(user_item_block(graph, 3), kind))
        out = np.asarray(propagate(block, padded))
        np.testing.assert_allclose(out[:3], r_hat @ x, atol=1e-6)
        np.testing.assert_array_equal(out[3:], 0.0)


def test_info_nce_matches_numpy_and_ignores_padding_rows():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    expected = numpy_info_nce(a[:4], b[:4], 0.2)
    weights = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    a[4:], b[4:] = 50.0, -50.0  # padding rows: neither scored nor candidates
    np.testing.assert_allclose(info_nce(jnp.asarray(a), jnp.asarray(b), weights, 0.2), expected, rtol=1e-5)


def test_loss_terms_follow_mmrec_and_every_parameter_trains():
    dataset = small_dataset()
    model = build(mgcn_config(embed_dim=8, knn_k=4, reg_weight=0.5, cl_loss=0.3).model, dataset)
    params = model.init(jax.random.PRNGKey(1))
    batch = {"users": jnp.array([0, 1, 2, 2, 0]), "positives": jnp.array([1, 2, 3, 0, 0]),
             "negatives": jnp.array([3, 0, 1, 4, 0]), "weights": jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])}
    loss_fn = lambda p: model.loss(p, model.consts, batch, None, None)  # noqa: E731
    (loss, parts), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    final, side, content = reference_forward(params["params"], dataset, ("image", "text"), 2, 1, 4)
    users, items = final[:dataset.num_users], final[dataset.num_users:]
    u, pos, neg = users[[0, 1, 2, 2]], items[[1, 2, 3, 0]], items[[3, 0, 1, 4]]
    diff = np.sum(u * pos, 1) - np.sum(u * neg, 1)
    np.testing.assert_allclose(parts["bpr"], -np.mean(np.log(sigmoid(diff))), rtol=1e-5)
    # Squared norms over MMRec's batch_size, the padded batch (5 rows here).
    squares = np.sum(u**2) + np.sum(pos**2) + np.sum(neg**2)
    np.testing.assert_allclose(parts["reg"], 0.5 * squares / 5, rtol=1e-5)
    nu = dataset.num_users
    cl = (numpy_info_nce(side[nu:][[1, 2, 3, 0]], content[nu:][[1, 2, 3, 0]], 0.2)
          + numpy_info_nce(side[:nu][[0, 1, 2, 2]], content[:nu][[0, 1, 2, 2]], 0.2))
    np.testing.assert_allclose(parts["cl"], cl, rtol=1e-5)
    np.testing.assert_allclose(loss, parts["bpr"] + 0.5 * parts["reg"] + 0.3 * cl, rtol=1e-5)
    for path, grad in jax.tree_util.tree_leaves_with_path(grads["params"]):
        assert np.isfinite(grad).all() and float(jnp.max(jnp.abs(grad))) > 0, path


def test_frozen_features_stay_constants():
    dataset = small_dataset()
    model = build(mgcn_config(embed_dim=8, knn_k=4, train_features=False).model, dataset)
    params = model.init(jax.random.PRNGKey(0))
    assert not [name for name in params["params"] if name.endswith("_features")]
    np.testing.assert_array_equal(model.consts["features"]["text"], dataset.features["text"])


@pytest.mark.parametrize("modalities", [("image",), ("audio", "image", "text")])
def test_any_number_of_modalities(modalities):
    dataset = small_dataset(modalities)
    model = build(mgcn_config(embed_dim=8, knn_k=4).model, dataset)
    params = model.init(jax.random.PRNGKey(0))
    names = tuple(dataset.modalities)
    final, _, _ = reference_forward(params["params"], dataset, names, 2, 1, 4)
    users, items = model.score_state(params, model.consts)
    np.testing.assert_allclose(np.concatenate([users, items]), final, atol=1e-5)
    batch = {"users": jnp.array([0, 1]), "positives": jnp.array([1, 2]), "negatives": jnp.array([3, 0]),
             "weights": jnp.ones(2)}
    assert np.isfinite(jax.jit(model.loss, static_argnums=4)(params, model.consts, batch, None, None)[0])


def test_bad_input_is_a_one_line_error():
    dataset = small_dataset()
    for field, value in (("n_layers", -1), ("n_ui_layers", -1), ("cl_loss", -0.1), ("cl_temperature", 0.0),
                         ("knn_k", 0), ("propagation", "dense")):
        with pytest.raises(ConfigError, match=f"model.{field}"):
            build_model(mgcn_config(**{field: value}).model, dataset)
    with pytest.raises(ConfigError, match="model.modalities"):
        build_model(mgcn_config(modalities=("video",)).model, dataset)
    no_features = InteractionDataset(name="ids_only", num_users=3, num_items=4, train=PAIRS, valid=NO_PAIRS,
                                     test=NO_PAIRS, features={})
    with pytest.raises(DataError, match="at least 1 modality"):
        build_model(mgcn_config().model, no_features)


SHARDED_CHECK = """
import jax, numpy as np
from mmjax.models.mgcn import MGCNOutput, mgcn_loss
from mmjax.train.loop import global_loss_and_grads
from mmjax.train.parallel import AXIS, replicate, shard_batches
from mmjax.train.task import Task

# float64, so that only a real difference (not summation order) shows.
jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(0)
tables = {name: rng.normal(size=(rows, 6)) for name, rows in (("users", 12), ("items", 9), ("side_users", 12),
          ("side_items", 9), ("content_users", 12), ("content_items", 9))}
params = MGCNOutput(**tables)  # stands for the model's output: the loss is all that sharding changes
batch = {"users": rng.integers(0, 12, 16), "positives": rng.integers(0, 9, 16),
         "negatives": rng.integers(0, 9, 16),
         "weights": (np.arange(16) < 10).astype(np.float64)}  # the second device holds real and padding rows
loss_fn = lambda p, consts, b, key, axis: mgcn_loss(p, b, 0.3, 1.0, 0.2, axis)
(loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, None, batch, None, None)
task = Task(model_name="mgcn", dataset_name="toy", init_params=None, loss_fn=loss_fn, epoch_batches=None,
            score_state=None, score_fn=None, consts=None, eval_sets={})
sharded = {k: v[:, 0] for k, v in shard_batches({k: v[None] for k, v in batch.items()}).items()}
mapped = jax.pmap(lambda p, b: global_loss_and_grads(task, p, None, b, None), axis_name=AXIS)
losses, _, mapped_grads = mapped(replicate(params), sharded)
print(float(np.max(np.abs(np.asarray(losses) - float(loss)))))
errors = jax.tree_util.tree_map(lambda g, m: float(np.max(np.abs(np.asarray(m) - np.asarray(g)[None])) /
                                                  np.max(np.abs(np.asarray(g)))), grads, mapped_grads)
print(max(jax.tree_util.tree_leaves(errors)))
"""


def test_two_device_loss_and_gradients_equal_the_global_batch():
    # Adam hides a constant gradient scale, so losses alone would not catch one: compare gradients.
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", SHARDED_CHECK], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loss_error, gradient_error = (float(x) for x in proc.stdout.split())
    # Without the gather, each device's InfoNCE denominators miss the other's rows: errors of ~0.4 or more.
    assert loss_error < 1e-12
    assert gradient_error < 1e-10


def test_training_learns(tmp_path):
    config = mgcn_config()
    config.train.learning_rate = 0.01
    results = train_and_evaluate(config, str(tmp_path))
    # Random ranking of 150 items gives recall@20 ~ 0.13 on average.
    assert results["valid"]["recall@20"] > 0.3
    assert results["test"]["recall@20"] > 0.3
