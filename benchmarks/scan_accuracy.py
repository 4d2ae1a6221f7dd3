"""Exact-match accuracy of a small Transformer (models/seq2seq.py) on SCAN random vs MCD splits.

The CFQ paper's effect: a seq2seq model that is near-perfect on a random split of SCAN fails on an
MCD split of the same sizes. Each split is a CFQ-style split.json (from `tessera mcd-split
--dataset scan`); the examples are SCAN in generation order, the order mcd-split indexes.

    tessera mcd-split --dataset scan --output out/scan_mcd_seed0 --seed 0
    tessera mcd-split --dataset scan --output out/scan_random --random-baseline
    nice -n 10 python benchmarks/scan_accuracy.py \
        --split random=out/scan_random/split.json --split mcd0=out/scan_mcd_seed0/split.json
    # defaults (4000 steps, 3 layers, d_model 128) are meant for an accelerator; the README numbers
    # come from a CPU-only run: --steps 600 --batch 64 --lr 2e-3 --d-model 64 --layers 2 --eval-limit 300
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from tessera.models import seq2seq  # noqa: E402
from tessera.transforms.mcd import scan as mcd_scan  # noqa: E402


def load_scan():
    return [(ex["input"], ex["output"]) for ex in mcd_scan.examples()]


def train_and_eval(examples, split: dict, cfg: seq2seq.Config, src_vocab, tgt_vocab, *, steps: int,
                   batch: int, lr: float, seed: int, eval_batch: int = 512, eval_limit: int = 0) -> dict:
    """Trains from scratch on trainIdxs; exact match on trainIdxs sample, devIdxs and testIdxs."""
    def arrays(idxs):
        src = np.stack([src_vocab.encode(examples[i][0], cfg.max_src_len) for i in idxs])
        tgt = np.stack([tgt_vocab.encode(examples[i][1], cfg.max_tgt_len, bos=True) for i in idxs])
        return src, tgt

    train_src, train_tgt = arrays(split["trainIdxs"])
    params = seq2seq.init_params(cfg, seed)
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(500, steps // 10 + 1), steps, lr * 0.05)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
    opt_state = opt.init(params)

    @jax.jit
    def train_step(params, opt_state, src, tgt, rng):
        loss, grads = jax.value_and_grad(seq2seq.loss_fn)(params, cfg, src, tgt, rng)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    decode = jax.jit(lambda p, s: seq2seq.greedy_decode(p, cfg, s))
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    loss = float("nan")
    for step in range(steps):
        idx = rng.integers(0, len(train_src), size=batch)
        key, sub = jax.random.split(key)
        params, opt_state, loss = train_step(params, opt_state, jnp.asarray(train_src[idx]),
                                             jnp.asarray(train_tgt[idx]), sub)
        if (step + 1) % 500 == 0:
            print(f"  step {step + 1}: loss {float(loss):.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - start

    def exact_match(idxs):
        if not idxs:
            return None
        if eval_limit and len(idxs) > eval_limit:  # keyed subsample, to bound CPU-only runs
            idxs = sorted(np.random.default_rng(seed + 2).choice(idxs, size=eval_limit, replace=False).tolist())
        src, _ = arrays(idxs)
        correct = 0
        for lo in range(0, len(idxs), eval_batch):
            chunk = src[lo:lo + eval_batch]
            pad = eval_batch - len(chunk)
            out = np.asarray(decode(params, jnp.asarray(np.pad(chunk, ((0, pad), (0, 0))))))[:len(chunk)]
            for row, i in zip(out, idxs[lo:lo + eval_batch]):
                correct += tgt_vocab.decode(row) == examples[i][1]
        return correct / len(idxs)

    train_sample = list(np.random.default_rng(seed + 1).choice(split["trainIdxs"], size=min(1000, len(split["trainIdxs"])), replace=False))
    evaluated = {k: min(len(split.get(k, [])), eval_limit or 10**9) for k in ("devIdxs", "testIdxs")}
    return {"train_exact_match_sample": exact_match([int(i) for i in train_sample]),
            "dev_exact_match": exact_match(split.get("devIdxs", [])) if not eval_limit else None,
            "test_exact_match": exact_match(split["testIdxs"]),
            "evaluated_examples": evaluated, "final_loss": float(loss), "train_seconds": round(train_seconds, 1), "steps": steps,
            "sizes": {k: len(split.get(k, [])) for k in ("trainIdxs", "devIdxs", "testIdxs")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", action="append", required=True, help="NAME=path/to/split.json (repeat)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--tiny", action="store_true", help="the tiny test variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-limit", type=int, default=0,
                        help="evaluate on at most this many examples per set (keyed sample); 0 = all")
    parser.add_argument("--output", default=None, help="write the results JSON here")
    args = parser.parse_args(argv)
    examples = load_scan()
    src_vocab = seq2seq.Vocab.from_texts([e[0] for e in examples])
    tgt_vocab = seq2seq.Vocab.from_texts([e[1] for e in examples])
    if args.tiny:
        cfg = seq2seq.Config(len(src_vocab), len(tgt_vocab), **seq2seq.TINY_CONFIG)
    else:
        cfg = seq2seq.Config(len(src_vocab), len(tgt_vocab), layers=args.layers, d_model=args.d_model,
                             d_ff=2 * args.d_model)
    results = {"device": str(jax.devices()[0]), "config": cfg.__dict__, "splits": {}}
    for spec in args.split:
        name, path = spec.split("=", 1)
        with open(path) as handle:
            split = json.load(handle)
        print(f"{name}: training on {len(split['trainIdxs'])} examples", flush=True)
        results["splits"][name] = train_and_eval(examples, split, cfg, src_vocab, tgt_vocab, steps=args.steps,
                                                 batch=args.batch, lr=args.lr, seed=args.seed,
                                                 eval_limit=args.eval_limit)
        print(name, json.dumps(results["splits"][name]), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
