"""BPR-MF and LightGCN: initialisation, forward pass against numpy, loss terms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.errors import ConfigError
from mmjax.graph import dense_adjacency, user_item_graph
from mmjax.models import BPRMF, LightGCN
from mmjax.models.initializers import embedding_initializer
from mmjax.train.losses import bpr_loss, embedding_norm_penalty

PAIRS = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2], [2, 3]], dtype=np.int32)


def test_xavier_uniform_bound_matches_pytorch_convention():
    table = embedding_initializer("xavier_uniform")(jax.random.PRNGKey(0), (5000, 64))
    bound = np.sqrt(6.0 / (5000 + 64))
    assert float(jnp.max(jnp.abs(table))) <= bound
    assert float(jnp.max(jnp.abs(table))) > 0.95 * bound
    with pytest.raises(ConfigError, match="model.init"):
        embedding_initializer("zeros")


def test_bpr_mf_outputs_its_tables():
    model = BPRMF(num_users=3, num_items=4, embed_dim=8)
    params = model.init(jax.random.PRNGKey(0))
    out = model.apply(params)
    assert out.users.shape == (3, 8) and out.items.shape == (4, 8)
    np.testing.assert_array_equal(out.users, out.ego_users)


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_lightgcn_equals_dense_layer_mean(layers):
    graph = jax.tree_util.tree_map(jnp.asarray, user_item_graph(PAIRS, 3, 4))
    model = LightGCN(num_users=3, num_items=4, embed_dim=5, n_layers=layers)
    params = model.init(jax.random.PRNGKey(1), graph)
    out = model.apply(params, graph)
    a = dense_adjacency(user_item_graph(PAIRS, 3, 4))
    e = np.concatenate([params["params"]["user_embedding"], params["params"]["item_embedding"]])
    expected = np.mean([np.linalg.matrix_power(a, l) @ e for l in range(layers + 1)], axis=0)
    np.testing.assert_allclose(np.concatenate([out.users, out.items]), expected, atol=1e-5)


def test_bpr_loss_and_penalty_ignore_padding_rows():
    pos, neg = jnp.array([2.0, 0.5, 9.0]), jnp.array([1.0, 1.5, -9.0])
    weights = jnp.array([1.0, 1.0, 0.0])
    expected = -(np.log(1 / (1 + np.exp(-1.0))) + np.log(1 / (1 + np.exp(1.0)))) / 2
    np.testing.assert_allclose(bpr_loss(pos, neg, weights), expected, rtol=1e-6)
    table = jnp.array([[3.0, 4.0], [0.0, 0.0], [100.0, 100.0]])
    # ||rows 0..1||_F = 5 for each table, two tables, two real rows.
    np.testing.assert_allclose(embedding_norm_penalty((table, table), weights), (5 + 5) / 2, rtol=1e-6)


def test_xavier_normal_is_torchs_untruncated_normal():
    """model.init=xavier_normal starts a [rows, dim] table as torch.nn.init.xavier_normal_ does: std
    sqrt(2 / (rows + dim)) with tails past two standard deviations (Flax's own version truncates them)."""
    table = np.asarray(embedding_initializer("xavier_normal")(jax.random.PRNGKey(0), (4000, 64)))
    std = np.sqrt(2.0 / (4000 + 64))
    assert abs(table.std() / std - 1.0) < 0.01
    assert np.mean(np.abs(table) > 2 * std) > 0.03  # ~4.6 % for a normal, 0 when truncated at 2 sigma


@pytest.mark.parametrize("model", ["bpr", "lightgcn", "freedom", "mgcn", "rlmultimodalrec", "magnet"])
def test_the_compiled_init_gives_the_op_by_op_parameters(model):
    """Graph models create their parameters in one compiled program (models/base.compiled_init, for startup
    time): the parameters must be the op-by-op init's, bit for bit."""
    import os

    from mmjax.config_files import load_config_file
    from mmjax.data.synthetic import make_synthetic
    from mmjax.models import build_model

    config = load_config_file(os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", f"{model}.py"))
    config.model.knn_k = 5
    built = build_model(config.model, make_synthetic(num_users=120, num_items=80, seed=5))
    rng = jax.random.PRNGKey(3)
    compiled, op_by_op = built.init(rng), built.init.op_by_op(rng)
    assert jax.tree_util.tree_structure(compiled) == jax.tree_util.tree_structure(op_by_op)
    for a, b in zip(jax.tree_util.tree_leaves(compiled), jax.tree_util.tree_leaves(op_by_op)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
