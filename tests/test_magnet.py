"""MAGNET: templates, gates, the routing schedule, exact full ranking, graphs, resume in both stages, flags."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config_files import load_config_file
from mmjax.data import make_synthetic
from mmjax.errors import ConfigError
from mmjax.eval import top_k_masked
from mmjax.graph import content_augmented_graph, dense_adjacency, user_item_graph
from mmjax.models import build_model
from mmjax.report import report
from mmjax.nn.experts import balance_divergence, gated_mixture, normalised_entropy, role_templates, routing_gates
from mmjax.models.magnet_schedule import EntropyTriggeredRouting
from mmjax.train.train import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def magnet_config(users=120, items=80, **model):
    config = load_config_file(os.path.join(ROOT, "configs", "magnet.py"))
    config.data.synthetic.num_users = users
    config.data.synthetic.num_items = items
    config.train.batch_size = 256
    config.train.num_epochs = 6
    config.model.knn_k = 5
    config.model.update(model)
    return config


def dataset(**kwargs):
    return make_synthetic(num_users=120, num_items=80, seed=5, **kwargs)


def test_role_templates_mix_sources_by_role():
    templates = role_templates(3)
    assert templates.shape == (9, 3)
    np.testing.assert_allclose(templates.sum(axis=1), 1.0)
    np.testing.assert_allclose(templates[1], [0, 1, 0])  # dominant, anchor 1
    np.testing.assert_allclose(templates[3 + 1], [0.25, 0.5, 0.25])  # balanced
    np.testing.assert_allclose(templates[6 + 1], [0.5, 0, 0.5])  # complementary: only the others
    four = role_templates(4)
    np.testing.assert_allclose(four[4 + 0], [0.5, 1 / 6, 1 / 6, 1 / 6])
    np.testing.assert_allclose(role_templates(2)[5], [1.0, 0.0])  # complementary of source 1 with K = 2
    with pytest.raises(ConfigError, match="sources"):
        role_templates(1)


def test_sparse_gates_keep_the_top_k_renormalised():
    logits = jnp.asarray([[3.0, 1.0, 2.0, -1.0, 0.0]])
    experts = [logits[:, e] for e in range(5)]
    dense = np.stack(routing_gates(experts, 1.0, 2, jnp.asarray(False)), axis=-1)
    np.testing.assert_allclose(dense, jax.nn.softmax(logits), rtol=1e-6)
    sparse = np.stack(routing_gates(experts, 1.0, 2, jnp.asarray(True)), axis=-1)[0]
    expected = np.exp([3.0, 2.0]) / np.exp([3.0, 2.0]).sum()
    np.testing.assert_allclose(sparse[[0, 2]], expected, rtol=1e-6)
    assert np.all(sparse[[1, 3, 4]] == 0)
    tied = np.stack(routing_gates([jnp.ones(1)] * 4, 1.0, 2, True), axis=-1)[0]
    np.testing.assert_allclose(tied, [0.5, 0.5, 0, 0])  # exactly k kept; ties go to the lower index
    assert float(normalised_entropy(jnp.full((9,), 1 / 9))) == pytest.approx(1.0, abs=1e-6)
    assert float(normalised_entropy(jnp.eye(9)[0])) == pytest.approx(0.0, abs=1e-7)
    assert float(balance_divergence(jnp.full((9,), 1 / 9))) == pytest.approx(0.0, abs=1e-6)
    assert float(balance_divergence(jnp.eye(9)[0])) == pytest.approx(np.log(9), rel=1e-6)


@pytest.mark.parametrize("sparse", [False, True, jnp.asarray(False), jnp.asarray(True)])
def test_gated_mixture_equals_the_gate_weighted_sum(sparse):
    """Full ranking's one-division mixture equals Σ_e g_e v_e with the training path's gates."""
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    logits = list(3.0 * jax.random.normal(keys[0], (9, 4, 7)))
    values = list(jax.random.normal(keys[1], (9, 4, 7)))
    gates = routing_gates(logits, 0.7, 3, sparse)
    expected = sum(g * v for g, v in zip(gates, values))
    np.testing.assert_allclose(gated_mixture(logits, values, 0.7, 3, sparse), expected, rtol=1e-5, atol=1e-6)


def run_schedule(schedule: EntropyTriggeredRouting, entropies):
    state, history = schedule.init(), []
    for value in entropies:
        history.append((float(state["rho"]), int(state["trigger_epoch"])))
        state = schedule.update(state, {"entropy": jnp.asarray(value)})
    return state, history


def test_entropy_trigger_fires_on_a_high_flat_ema_then_ramps():
    schedule = EntropyTriggeredRouting(min_entropy=0.8, tolerance=0.01, window=3, ramp_epochs=4,
                                       max_trigger_epoch=50)
    state, history = run_schedule(schedule, [0.9] * 10)
    # EMA flat from epoch 1 on: stable counts 1, 2, 3 after epochs 1, 2, 3 -> fires at the end of epoch 3.
    assert int(state["trigger_epoch"]) == 3
    assert [rho for rho, _ in history] == [0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    assert schedule.holds_early_stop({"trigger_epoch": -1}) and not schedule.holds_early_stop({"trigger_epoch": 3})
    # Low entropy never fires before the cap; a moving EMA resets the stable count.
    low, _ = run_schedule(schedule, [0.5] * 10)
    assert int(low["trigger_epoch"]) == -1
    moving, _ = run_schedule(schedule, [0.9, 0.5, 0.99, 0.3, 0.99, 0.3])
    assert int(moving["trigger_epoch"]) == -1 and int(moving["stable_epochs"]) == 0


def test_schedule_modes():
    capped, _ = run_schedule(EntropyTriggeredRouting(max_trigger_epoch=4, ramp_epochs=2), [0.1] * 6)
    assert int(capped["trigger_epoch"]) == 3 and float(capped["rho"]) == 1.0
    fixed, _ = run_schedule(EntropyTriggeredRouting(mode="fixed", max_trigger_epoch=4, window=1), [0.99] * 3)
    assert int(fixed["trigger_epoch"]) == -1  # the entropy test plays no part
    coverage, _ = run_schedule(EntropyTriggeredRouting(mode="coverage", max_trigger_epoch=2), [0.99] * 6)
    assert int(coverage["trigger_epoch"]) == -1 and float(coverage["rho"]) == 0.0
    specialise = EntropyTriggeredRouting(mode="specialise")
    _, history = run_schedule(specialise, [0.5] * 3)
    assert [rho for rho, _ in history] == [1.0, 1.0, 1.0]
    assert not specialise.holds_early_stop(specialise.as_epoch_schedule().to_host(specialise.init()))
    with pytest.raises(ConfigError, match="model.schedule.mode"):
        EntropyTriggeredRouting(mode="sometimes")


def test_content_view_adds_symmetric_item_edges():
    pairs = np.array([[0, 0], [0, 1], [1, 1], [2, 2]])
    edges = (np.array([0, 0, 1, 2]), np.array([0, 2, 2, 1]), np.array([1.0, 0.6, 0.4, 0.4]))
    dense = dense_adjacency(content_augmented_graph(pairs, 3, 3, edges, item_weight=2.0))
    raw = dense_adjacency(user_item_graph(pairs, 3, 3)) != 0
    expected = raw.astype(float)
    items = np.zeros((3, 3))
    items[0, 2], items[1, 2] = 0.6, 0.4  # self-loop (0, 0) dropped
    items[2, 1] += 0.4
    sym = (items + items.T) / 2 * 2.0
    expected[3:, 3:] = sym
    degree = expected.sum(axis=1)
    np.testing.assert_allclose(dense, expected / np.sqrt(np.outer(degree, degree)), atol=1e-6)
    np.testing.assert_allclose(dense, dense.T, atol=1e-7)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("moe_fusion, expert_output, experts", [
    ("router", "vector", {}), ("uniform", "vector", {}), ("concat_mlp", "vector", {}),
    ("router", "behaviour_gate", {}), ("router", "vector", {"expert_mlp": False, "expert_dim": 8}),
    ("router", "vector", {"expert_dim": 8, "expert_shared_projection": True}),
    ("router", "vector", {"experts": "vanilla", "expert_mlp": False}),
    ("router", "vector", {"side_view": True, "detach_experts": True})])
def test_full_ranking_equals_pairwise_scores(sparse, moe_fusion, expert_output, experts):
    """score_fn over all items equals the loss path's per-pair scores: ranking is exact, not sampled."""
    data = dataset()
    config = magnet_config(moe_fusion=moe_fusion, expert_output=expert_output, rank_candidates=30,
                           expert_scale_init=1.0, **experts)  # 0 would hide the expert term
    model = build_model(config.model, data)
    params = model.init(jax.random.PRNGKey(0))
    schedule = None if model.schedule is None else dict(model.schedule.init(), rho=jnp.asarray(float(sparse)))
    state = model.scoring_state(params, model.consts, schedule)
    users = jnp.asarray([0, 5, 17, 119])
    full = np.asarray(model.score_fn(state, users))
    assert full.shape == (4, data.num_items)

    from mmjax.models import magnet
    module = magnet.magnet_module(config.model, data, data.modalities)
    nodes = module.apply(params, model.consts, method=magnet.MAGNET.encode)
    pair_users = jnp.repeat(users, data.num_items)
    pair_items = jnp.tile(jnp.arange(data.num_items), len(users))
    user = module.apply(params, nodes, pair_users, True, method=magnet.MAGNET.side)
    item = module.apply(params, nodes, pair_items + data.num_users, False, method=magnet.MAGNET.side)
    gates = magnet.pair_gates(module, params, user, item, 1.0, 3, jnp.asarray(sparse), outer=False)
    base, dots = magnet.pair_dots(user, item, outer=False)
    pairwise = np.asarray(magnet.combined_scores(base, magnet.gated_dots(dots, gates), True,
                                                 magnet.expert_scale(params, config.model.expert_dot_scale))
                          ).reshape(full.shape)
    np.testing.assert_allclose(full, pairwise, rtol=2e-4, atol=2e-5)

    # Pruned ranking: the bound holds, candidates score as the full path, and the top k are the same.
    scale = abs(float(magnet.expert_scale(params, config.model.expert_dot_scale)))
    width = scale * np.outer(np.asarray(state["user_bound"])[np.asarray(users)], np.asarray(state["item_bound"]))
    assert np.all(np.abs(full - np.asarray(base).reshape(full.shape)) <= width * (1 + 1e-4) + 1e-6)
    ids = jnp.asarray(np.argsort(-full, axis=1)[:, 5:35])
    loss_cfg = {"temperature": 1.0, "top_k": 3, "base_term": True, "dot_scale": config.model.expert_dot_scale}
    candidates = magnet.candidate_scores(module, params, magnet.side_rows(state["users"], users), state["items"],
                                         state["item_experts"], ids, loss_cfg, state["sparse"])
    np.testing.assert_allclose(candidates, np.take_along_axis(full, np.asarray(ids), axis=1), rtol=2e-4, atol=2e-5)
    exclude = jnp.asarray([[1, 2, 80], [0, 80, 80], [3, 4, 5], [80, 80, 80]])
    top_scores, top_ids = model.top_k_fn(state, users, exclude, 10)
    expected_scores, expected_ids = top_k_masked(jnp.asarray(full), exclude, 10)
    np.testing.assert_array_equal(top_ids, expected_ids)
    np.testing.assert_allclose(top_scores, expected_scores, rtol=2e-4, atol=2e-5)
    if moe_fusion == "router":
        kept = (np.stack(gates, axis=-1) > 0).sum(axis=-1)
        assert np.all(kept == 3) if sparse else np.all(kept == 9)


@pytest.mark.parametrize("modalities", [{"image": (16, 0.5)}, {"image": (16, 0.5), "text": (8, 1.0),
                                                                 "audio": (12, 1.0)}])
def test_any_number_of_modalities_gives_three_experts_per_source(modalities):
    data = dataset(modalities=modalities)
    model = build_model(magnet_config().model, data)
    params = model.init(jax.random.PRNGKey(0))
    assert model.route(params, model.consts, model.schedule.init(), jnp.arange(3),
                       jnp.arange(3)).shape == (3, 3 * (1 + len(modalities)))
    assert len(model.expert_labels) == 3 * (1 + len(modalities))
    loss, parts = model.loss(params, model.consts, {k: v[0] for k, v in _batches(data).items()},
                             jax.random.PRNGKey(1), schedule=model.schedule.init())
    assert np.isfinite(float(loss)) and 0 < float(parts["entropy"]) <= 1


@pytest.mark.parametrize("experts", [{"expert_output": "vector", "expert_mlp": True},
                                     {"expert_output": "vector", "expert_mlp": False},
                                     {"expert_output": "behaviour_gate", "expert_mlp": True}])
def test_expert_term_reaches_the_loss_and_the_ranking(experts):
    """The expert term changes the full-ranking scores (what the report's expert_effect measures), and
    the weights only it reads (expert MLPs, router) change the training loss and the scores."""
    data = dataset()
    # the expert term at full scale (the default's 1/d scale would make it a small correction)
    model = build_model(magnet_config(expert_scale_init=1.0, expert_dot_scale=1.0, **experts).model, data)
    params = model.init(jax.random.PRNGKey(0))
    schedule = model.schedule.init()
    batch = {k: v[0] for k, v in _batches(data).items()}
    users = jnp.arange(20)

    def loss_and_scores(p):
        loss, _ = model.loss(p, model.consts, batch, jax.random.PRNGKey(1), schedule=schedule)
        return float(loss), np.asarray(model.score_fn(model.scoring_state(p, model.consts, schedule), users))

    loss, scores = loss_and_scores(params)
    _, base_scores = loss_and_scores(model.without_experts(params))
    expert_term = np.abs(scores - base_scores).max(axis=1)  # per user
    assert np.all(expert_term > 1e-3 * np.abs(base_scores).max(axis=1))
    noise = iter(jax.random.split(jax.random.PRNGKey(2), 64))
    shifted = dict(params, params={name: jax.tree_util.tree_map(
        lambda x: x + 0.3 * jax.random.normal(next(noise), x.shape), value)
        if name in ("expert_mlps", "router") else value for name, value in params["params"].items()})
    shifted_loss, shifted_scores = loss_and_scores(shifted)
    assert np.abs(shifted_scores - scores).max() > 0.05 * expert_term.max()
    assert abs(shifted_loss - loss) > 1e-6


def test_modality_alignment_is_a_loss_part_that_trains_the_projections():
    """align_weight adds an InfoNCE part whose gradient reaches the modality projections; 0 leaves the
    loss as it was."""
    data = dataset()
    batch = {k: v[0] for k, v in _batches(data).items()}
    losses = {}
    for weight in (0.0, 0.5):
        model = build_model(magnet_config(align_weight=weight).model, data)
        params = model.init(jax.random.PRNGKey(0))
        schedule = model.schedule.init()

        def loss_fn(p):
            return model.loss(p, model.consts, batch, jax.random.PRNGKey(1), schedule=schedule)

        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        losses[weight] = (float(loss), parts, grads)
    (plain, plain_parts, plain_grads), (aligned, parts, grads) = losses[0.0], losses[0.5]
    assert "align" not in plain_parts and float(parts["align"]) > 0
    assert aligned == pytest.approx(plain + 0.5 * float(parts["align"]), rel=1e-5)
    projection = [name for name in grads["params"] if name.startswith("projections")]
    assert projection
    delta = max(float(jnp.abs(a - b).max()) for name in projection for a, b in zip(
        jax.tree_util.tree_leaves(grads["params"][name]), jax.tree_util.tree_leaves(plain_grads["params"][name])))
    assert delta > 1e-6


def test_side_view_adds_the_modality_side_into_the_scored_vectors():
    """With side_view the scored vectors are graph + side (MGCN's fused modality view) and the side's own
    layers get gradient from the ranking loss; without it there is no side."""
    from mmjax.models import magnet
    data = dataset()
    batch = {k: v[0] for k, v in _batches(data).items()}
    for side_view in (False, True):
        config = magnet_config(side_view=side_view, align_weight=0.0)
        model = build_model(config.model, data)
        params = model.init(jax.random.PRNGKey(0))
        module = magnet.magnet_module(config.model, data, data.modalities)
        nodes = module.apply(params, model.consts, method=magnet.MAGNET.encode)
        if not side_view:
            assert nodes.side is None and not any(k.startswith("side_") for k in params["params"])
            np.testing.assert_allclose(nodes.behaviour, nodes.graph)
            continue
        np.testing.assert_allclose(nodes.behaviour, nodes.graph + nodes.side, rtol=1e-6)
        assert float(jnp.abs(nodes.side).max()) > 0
        grads = jax.grad(lambda p: model.loss(p, model.consts, batch, jax.random.PRNGKey(1),
                                              schedule=model.schedule.init())[0])(params)
        for name in ("side_query_hidden", "side_preferences_0"):
            assert max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads["params"][name])) > 0


def test_weighted_view_fusion_moves_from_view_i_to_view_c():
    """view_fusion=weighted gives (1 - a) h_I + a h_C: view I alone at a = 0, view C alone at a = 1 and
    the mean at a = 1/2."""
    from mmjax.models import magnet
    data = dataset()
    model = build_model(magnet_config(side_view=False).model, data)
    params = model.init(jax.random.PRNGKey(0))

    def graph(**fusion):
        module = magnet.magnet_module(magnet_config(side_view=False, **fusion).model, data, data.modalities)
        return module.apply(params, model.consts, method=magnet.MAGNET.encode).graph

    only_i, only_c, mean = graph(views="interaction"), graph(views="content"), graph(view_fusion="mean")
    assert float(jnp.abs(only_i - only_c).max()) > 1e-4
    for share, expected in ((0.0, only_i), (1.0, only_c), (0.5, mean), (0.8, 0.2 * only_i + 0.8 * only_c)):
        np.testing.assert_allclose(graph(view_fusion="weighted", content_view_weight=share), expected,
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("detach", [False, True])
def test_detached_experts_send_no_gradient_into_the_encoder(detach):
    """With detach_experts the expert term (experts and router) has zero gradient with respect to the
    ID embeddings; without it, it has some."""
    from mmjax.models import magnet
    data = dataset()
    config = magnet_config(detach_experts=detach, expert_scale_init=1.0, expert_dot_scale=1.0)
    model = build_model(config.model, data)
    params = model.init(jax.random.PRNGKey(0))
    module = magnet.magnet_module(config.model, data, data.modalities)
    users, items = jnp.arange(16), jnp.arange(16) % data.num_items

    def expert_term(p):
        nodes = module.apply(p, model.consts, method=magnet.MAGNET.encode)
        user = module.apply(p, nodes, users, True, method=magnet.MAGNET.side)
        item = module.apply(p, nodes, items + data.num_users, False, method=magnet.MAGNET.side)
        gates = magnet.pair_gates(module, p, user, item, 1.0, 3, False, outer=False)
        return jnp.sum(magnet.gated_dots(magnet.pair_dots(user, item, outer=False)[1], gates))

    grads = jax.grad(expert_term)(params)["params"]
    largest = max(float(jnp.abs(grads[name]).max()) for name in ("user_embedding", "item_embedding"))
    assert largest == 0.0 if detach else largest > 1e-6


def _batches(data):
    from mmjax.data.sampling import bpr_epoch_batches
    return bpr_epoch_batches(data.train, data.num_items, np.arange(data.num_items, dtype=np.int32), 64,
                             np.random.default_rng(0))


@pytest.mark.parametrize("override, message", [
    ({"views": "three"}, "model.views"), ({"moe_fusion": "max"}, "model.moe_fusion"),
    ({"top_k": 0}, "model.top_k"), ({"experts": "random"}, "model.experts"),
    ({"router_temperature": 0.0}, "model.router_temperature"), ({"lambda_cov": -1.0}, "model.lambda_cov"),
    ({"modalities": ("smell",)}, "model.modalities"), ({"expert_dim": 0}, "model.expert_dim"),
    ({"expert_output": "behaviour_gate", "expert_dim": 16}, "model.expert_dim"),
    ({"align_weight": -0.1}, "model.align_weight"), ({"align_temperature": 0.0}, "model.align_temperature"),
    ({"rank_candidates": -1}, "model.rank_candidates"),
    ({"view_fusion": "weighted", "content_view_weight": 1.5}, "model.content_view_weight"),
])
def test_bad_config_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        build_model(magnet_config(**override).model, dataset())


def read_records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_training_logs_routing_and_resumes_in_either_stage(tmp_path):
    """The schedule is in the checkpointed state: stopping in stage 1 or in stage 2 and resuming ends
    exactly where an uninterrupted run does, trigger epoch included."""
    def config(epochs):
        c = magnet_config(users=150, items=90)
        c.train.num_epochs = epochs
        c.model.schedule.update(dict(max_trigger_epoch=2, ramp_epochs=2))
        return c

    full = train_and_evaluate(config(6), str(tmp_path / "full"))
    records = read_records(tmp_path / "full")
    stages = [r["schedule"]["trained_with"]["trigger_epoch"] >= 0 for r in records]
    assert stages == [False, False, True, True, True, True]  # fired at the end of epoch 1 (the cap)
    assert [r["schedule"]["trained_with"]["rho"] for r in records] == [0, 0, 0.5, 1, 1, 1]
    assert {"entropy", "balance", "route", "bpr"} <= set(records[0]["parts"])
    for stop in (1, 3):  # in stage 1, and in stage 2 mid-ramp
        workdir = str(tmp_path / f"stop{stop}")
        train_and_evaluate(config(stop), workdir)
        resumed = train_and_evaluate(config(6), workdir)
        assert resumed["test"] == full["test"] and resumed["best_epoch"] == full["best_epoch"]
        again = read_records(workdir)
        assert [r["loss"] for r in again] == [r["loss"] for r in records]
        assert [r["schedule"] for r in again] == [r["schedule"] for r in records]

    # The report of the run: routing curve with the trigger, role x source gate heatmap, long-tail buckets.
    summary = report(str(tmp_path / "full"), compare=[str(tmp_path / "stop1")])
    assert summary["routing"]["trigger_epoch"] == 1
    assert summary["routing"]["entropy"] == [r["parts"]["entropy"] for r in records]
    gates = summary["mean_gate"]
    assert len(gates) == 9 and "complementary/behaviour" in gates
    assert sum(gates.values()) == pytest.approx(1.0, abs=1e-5)
    run, other = summary["longtail"]
    test_pairs = len(make_synthetic(**config(6).data.synthetic.to_dict()).eval_pairs("test"))
    assert sum(run["pairs"]) == test_pairs and len(run["recall"]) == 5
    assert run["recall"] == other["recall"]  # the compared run resumed to the same model
    for plot in ("routing.png", "gate_heatmap.png", "longtail.png", "curves.png"):
        assert os.path.getsize(tmp_path / "full" / plot) > 5000


def test_early_stopping_waits_for_the_trigger(tmp_path):
    config = magnet_config(users=150, items=90)
    config.train.num_epochs = 7
    config.train.patience = 0
    config.train.learning_rate = 1e-6  # hardly learns: most epochs fail to improve
    config.model.schedule.update(dict(max_trigger_epoch=4, ramp_epochs=1))
    results = train_and_evaluate(config, str(tmp_path))
    # Stage 1 (epochs 0-3) cannot stop the run; from the trigger on, one bad epoch (patience 0) can.
    assert results["epochs_run"] >= 4


def test_mean_history_and_its_leave_one_out():
    from mmjax.models import magnet
    data = dataset()
    config = magnet_config(history="mean_loo")
    model = build_model(config.model, data)
    params = model.init(jax.random.PRNGKey(0))
    module = magnet.magnet_module(config.model, data, data.modalities)
    nodes = module.apply(params, model.consts, method=magnet.MAGNET.encode)
    sources = np.asarray(nodes.sources)
    indptr, indices = data.train_csr()
    user = int(np.argmax(np.diff(indptr)))  # a user with several train items
    items = indices[indptr[user]:indptr[user + 1]]
    np.testing.assert_allclose(sources[1:, user], sources[1:, data.num_users + items].mean(axis=1), rtol=1e-5,
                               atol=1e-6)
    held = items[0]
    loo = magnet.leave_one_out(jnp.asarray(sources[1:, [user]]), jnp.asarray(sources[1:, [data.num_users + held]]),
                               jnp.asarray([float(len(items))]))
    np.testing.assert_allclose(np.asarray(loo)[:, 0], sources[1:, data.num_users + items[1:]].mean(axis=1),
                               rtol=1e-4, atol=1e-5)
    single = magnet.leave_one_out(jnp.ones((1, 1, 3)), jnp.ones((1, 1, 3)), jnp.asarray([1.0]))
    assert np.all(np.asarray(single) == 0)


def test_the_compiled_initialisation_gives_the_op_by_op_parameters():
    """MAGNET's init is jitted for startup time; the parameters must be those of the eager forward pass."""
    model = build_model(magnet_config().model, dataset())
    rng = jax.random.PRNGKey(3)
    compiled, eager = model.init(rng), model.init.op_by_op(rng)
    leaves = jax.tree_util.tree_leaves(compiled)
    assert len(leaves) == len(jax.tree_util.tree_leaves(eager)) > 0
    for a, b in zip(leaves, jax.tree_util.tree_leaves(eager)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
