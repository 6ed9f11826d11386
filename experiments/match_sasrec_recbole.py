"""SASRec step for step beside RecBole 1.2.1's: same initial weights, same batches, dropout off.

Seed-to-seed noise hides small implementation differences in a 3-seed comparison of test metrics. This
removes the noise: RecBole builds its SASRec and its shuffled training batches on scientific, records its
initial weights, the batches and the loss of each Adam step; mmjax then starts from those weights, takes the
same batches and steps, and the per-step losses and the final weights are compared. RecBole's evaluator then
ranks valid and test with its trained weights, and mmjax's evaluation views rank them with the same weights,
so the metrics compare the two evaluations alone. With dropout 0 both
sides are deterministic, so what remains is float rounding, plus RecBole's one modelling quirk: its softmax
covers the padding row of the item table (a trainable extra class), which ours has with `model.softmax_pad`
on. A stock trace is replayed with it on (RecBole's padding row becomes our padding class); a trace of
`--pad-class=excluded` (RecBole trained without that class) with it off, our default.

Two steps, two environments (RecBole's venv has no jax, mmjax's no torch):

  /work/recbole-venv/bin/python experiments/match_sasrec_recbole.py recbole --steps 68 --out /tmp/match_stock.npz
  /work/recbole-venv/bin/python experiments/match_sasrec_recbole.py recbole --steps 68 --pad-class excluded \
      --out /tmp/match_excluded.npz
  python -m experiments.match_sasrec_recbole mmjax --trace /tmp/match_stock.npz /tmp/match_excluded.npz \
      --json experiments/results/sasrec_matched_recbole_scientific.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments import reproduce_recbole as reference  # noqa: E402  (imports no mmjax, no torch)

PAD = -1  # the padding slot in the recorded batches (original item ids otherwise)


def recbole_side(args) -> None:
    """Trains RecBole's SASRec `args.steps` Adam steps over its own epoch-ordered batches; writes the trace."""
    notes = reference.apply_shims()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    reference.convert(reference.read_inter(args.data), args.workdir)
    config_dict = reference.recbole_config(args.seed, args.workdir, epochs=1, stopping_step=10)
    config_dict.update(hidden_dropout_prob=args.dropout, attn_dropout_prob=args.dropout, state="WARNING",
                       metric_decimal_place=8)
    config = Config(model="SASRec", dataset=reference.DATASET, config_dict=config_dict)
    torch.set_num_threads(1)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset)
    tokens = np.array([PAD] + [int(t) for t in dataset.field2id_token["item_id"][1:]], np.int64)
    initial = {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])

    def loss_of(interaction):
        if args.pad_class == "stock":
            return model.calculate_loss(interaction)
        states = model.forward(interaction["item_id_list"], interaction["item_length"])
        logits = states @ model.item_embedding.weight[1:].T  # real items only, as mmjax's softmax
        return torch.nn.functional.cross_entropy(logits, interaction["item_id"] - 1)

    model.train()
    histories, lengths, targets, losses = [], [], [], []
    step = 0
    while step < args.steps:
        for interaction in train_data:
            if step == args.steps:
                break
            loss = loss_of(interaction)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            histories.append(tokens[interaction["item_id_list"].numpy()])
            lengths.append(interaction["item_length"].numpy())
            targets.append(tokens[interaction["item_id"].numpy()])
            losses.append(loss.item())
            step += 1
    final = {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}
    trainer = Trainer(config, model)
    evaluation = {split: {reference_metric(k): float(v) for k, v in
                          trainer.evaluate(data, load_best_model=False, show_progress=False).items()}
                  for split, data in (("valid", valid_data), ("test", test_data))}
    np.savez(args.out, losses=np.array(losses), batch_sizes=np.array([len(t) for t in targets]),
             histories=np.concatenate(histories), lengths=np.concatenate(lengths), targets=np.concatenate(targets),
             item_tokens=tokens, meta=json.dumps({"seed": args.seed, "dropout": args.dropout, "steps": args.steps,
                                                  "pad_class": args.pad_class, "shims": notes,
                                                  "evaluation": evaluation,
                                                  "versions": reference.versions()}),
             **{f"initial/{k}": v for k, v in initial.items()}, **{f"final/{k}": v for k, v in final.items()})
    print(f"wrote {args.out}: {len(losses)} steps, loss {losses[0]:.5f} -> {losses[-1]:.5f}")


def reference_metric(name: str) -> str:
    """RecBole's metric name as mmjax's ('hit@5' -> 'hr@5'; the others are the same)."""
    return "hr@" + name.split("@")[1] if name.startswith("hit@") else name


def recbole_to_params(weights: dict[str, np.ndarray], item_tokens: np.ndarray, num_layers: int,
                      pad_class: bool) -> dict:
    """RecBole SASRec weights as mmjax SASRec params (torch Linear [out, in] -> Dense kernel [in, out]);
    the item table reordered from RecBole's internal ids to ours (the original ids), its padding row our
    padding class when `pad_class`, else dropped."""
    def dense(prefix):
        return {"kernel": weights[f"{prefix}.weight"].T, "bias": weights[f"{prefix}.bias"]}

    def norm(prefix):
        return {"scale": weights[f"{prefix}.weight"], "bias": weights[f"{prefix}.bias"]}

    table = weights["item_embedding.weight"]
    items = np.zeros((len(item_tokens) - 1, table.shape[1]), table.dtype)
    items[item_tokens[1:]] = table[1:]
    encoder = {}
    for layer in range(num_layers):
        attention, feed = f"trm_encoder.layer.{layer}.multi_head_attention", f"trm_encoder.layer.{layer}.feed_forward"
        encoder[f"attention_{layer}"] = {"query": dense(f"{attention}.query"), "key": dense(f"{attention}.key"),
                                         "value": dense(f"{attention}.value"), "out": dense(f"{attention}.dense"),
                                         "norm": norm(f"{attention}.LayerNorm")}
        encoder[f"feed_forward_{layer}"] = {"dense_in": dense(f"{feed}.dense_1"), "dense_out": dense(f"{feed}.dense_2"),
                                            "norm": norm(f"{feed}.LayerNorm")}
    params = {"item_embedding": items, "position_embedding": weights["position_embedding.weight"],
              "input_norm": norm("LayerNorm"), "encoder": encoder}
    if pad_class:
        params["pad_class"] = table[:1]
    return {"params": params}


def recorded_weights(trace, when: str) -> dict[str, np.ndarray]:
    """RecBole's state_dict as the trace holds it, `when` being 'initial' or 'final'."""
    return {key.split("/", 1)[1]: trace[key] for key in trace.files if key.startswith(f"{when}/")}


def trace_batches(trace) -> list[dict[str, np.ndarray]]:
    """The recorded RecBole batches as mmjax SASRec training batches (left-padded, ids shifted, packed)."""
    from mmjax.data.sequences import PAD_ID, pack_windows

    histories, lengths, targets = trace["histories"], trace["lengths"], trace["targets"]
    max_len = histories.shape[1]
    windows = np.full(histories.shape, PAD_ID, np.int32)
    for row, length in enumerate(lengths):  # RecBole's windows are right-padded: items first
        windows[row, max_len - length:] = histories[row, :length] + 1
    batches, start = [], 0
    for size in trace["batch_sizes"]:
        packed = pack_windows(windows[start:start + size])
        batches.append({"tokens": packed.tokens, "segments": packed.segments, "positions": packed.positions,
                        "last": packed.last, "target": targets[start:start + size].astype(np.int32),
                        "weights": np.ones(size, np.float32)})
        start += size
    return batches


def mmjax_side(path: str, data: str) -> dict:
    """mmjax's SASRec from the trace's initial weights over its batches: per-step losses beside RecBole's."""
    import jax
    import optax

    from mmjax import defaults
    from mmjax.data import load_mmrec_dir
    from mmjax.models import build_model

    trace = np.load(path)
    meta = json.loads(str(trace["meta"]))
    config = defaults.sequential_config()
    config.model.name = "sasrec"
    config.model.modalities = ()
    config.model.hidden_dropout = config.model.attention_dropout = float(meta["dropout"])
    pad_class = meta["pad_class"] == "stock"
    config.model.softmax_pad = pad_class
    dataset = load_mmrec_dir(data)
    if dataset.num_items != len(trace["item_tokens"]) - 1:
        raise SystemExit(f"error: {path} has {len(trace['item_tokens']) - 1} items, {data} {dataset.num_items}")
    model = build_model(config.model, dataset)
    layers = int(config.model.num_layers)
    params = jax.tree.map(np.asarray, recbole_to_params(recorded_weights(trace, "initial"), trace["item_tokens"], layers,
                                                      pad_class))
    reference_shapes = jax.tree.map(np.shape, model.init(jax.random.PRNGKey(0)))
    if jax.tree.map(np.shape, params) != reference_shapes:
        raise SystemExit("error: the mapped RecBole weights do not have mmjax SASRec's parameter tree")
    optimizer = optax.adam(1e-3)

    @jax.jit
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(lambda p: model.loss(p, model.consts, batch, jax.random.PRNGKey(0))[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = optimizer.init(params), []
    start = time.perf_counter()
    for batch in trace_batches(trace):
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(loss.item())
    final = recbole_to_params(recorded_weights(trace, "final"), trace["item_tokens"], layers, pad_class)
    gaps = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b))), params, final)
    theirs = trace["losses"]
    relative = np.abs(np.array(losses) - theirs) / theirs
    evaluation = evaluate_like(meta.get("evaluation"), config, dataset, jax.tree.map(np.asarray, final))
    return {"trace": path, "recbole": meta, "mmjax_softmax_pad": pad_class, "steps": len(losses),
            "seconds": time.perf_counter() - start,
            "loss_recbole": theirs.tolist(), "loss_mmjax": losses,
            "max_relative_loss_gap": float(relative.max()), "last_relative_loss_gap": float(relative[-1]),
            "max_abs_weight_gap_after": float(max(jax.tree.leaves(gaps))),
            "max_abs_item_weight_after": float(np.max(np.abs(final["params"]["item_embedding"]))),
            "evaluation": evaluation}


def evaluate_like(recorded: dict | None, config, dataset, params) -> dict | None:
    """mmjax's valid and test metrics of RecBole's trained weights beside RecBole's own (None for a trace
    without them), and the largest absolute difference."""
    if not recorded:
        return None
    from mmjax.eval.ranking import evaluate, parse_metric
    from mmjax.train.sequential import sequential_task

    task = sequential_task(config, dataset)
    state = task.score_state(params, task.consts, None)
    names = sorted(recorded["test"])
    ks = sorted({parse_metric(name)[1] for name in names})
    kinds = sorted({parse_metric(name)[0] for name in names})
    ours = {split: {k: v for k, v in evaluate(task.score_fn, state, task.eval_sets[split], ks=ks,
                                               metrics=kinds).items() if k in recorded[split]}
            for split in ("valid", "test")}
    gap = max(abs(ours[split][k] - recorded[split][k]) for split in ours for k in ours[split])
    return {"recbole": recorded, "mmjax": ours, "max_abs_metric_gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sides = parser.add_subparsers(dest="side", required=True)
    theirs = sides.add_parser("recbole", help="run in RecBole's venv: write a trace")
    theirs.add_argument("--data", default=reference.DATA)
    theirs.add_argument("--workdir", default="/tmp/recbole_match")
    theirs.add_argument("--seed", type=int, default=2020)
    theirs.add_argument("--steps", type=int, default=68, help="Adam steps (34 per epoch on scientific)")
    theirs.add_argument("--dropout", type=float, default=0.0)
    theirs.add_argument("--pad-class", choices=("stock", "excluded"), default="stock")
    theirs.add_argument("--out", required=True)
    ours = sides.add_parser("mmjax", help="run in mmjax's venv: replay traces, compare")
    ours.add_argument("--trace", nargs="+", required=True)
    ours.add_argument("--data", default=reference.DATA)
    ours.add_argument("--json", default=None, help="write the comparison here")
    args = parser.parse_args()
    if args.side == "recbole":
        args.data, args.workdir, args.out = (os.path.abspath(p) for p in (args.data, args.workdir, args.out))
        os.makedirs(args.workdir, exist_ok=True)
        os.chdir(args.workdir)  # RecBole's Trainer writes ./log_tensorboard/ relative to the working directory
        recbole_side(args)
        return
    record = {"what": "mmjax SASRec replaying RecBole 1.2.1 SASRec traces (same initial weights and batches)",
              "command": " ".join(["python -m experiments.match_sasrec_recbole", *sys.argv[1:]]),
              "mmjax": reference.git_commit(), "dataset_checksum": reference.sha256(
                  os.path.join(args.data, "scientific.inter")),
              "runs": [mmjax_side(path, args.data) for path in args.trace]}
    for run in record["runs"]:
        print(f"{run['trace']} ({run['recbole']['pad_class']} pad class, dropout {run['recbole']['dropout']}): "
              f"{run['steps']} steps, loss {run['loss_recbole'][-1]:.5f} (RecBole) vs {run['loss_mmjax'][-1]:.5f}, "
              f"max relative gap {run['max_relative_loss_gap']:.2e}, weights apart by {run['max_abs_weight_gap_after']:.2e}")
        if run["evaluation"]:
            test = run["evaluation"]
            print(f"  evaluating RecBole's weights: test recall@10 {test['recbole']['test']['recall@10']:.6f} (RecBole) "
                  f"vs {test['mmjax']['test']['recall@10']:.6f}, largest metric gap {test['max_abs_metric_gap']:.2e}")
    if args.json:
        reference.write_json(args.json, record)


if __name__ == "__main__":
    main()
