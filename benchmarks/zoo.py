"""Networks trained per second: one vmapped population vs the same networks one at a time.

Both sides run the same per-network step (`zoo_population.make_single_step`): the population side
jits `vmap(step)` once, the baseline jits `step` once and loops over networks. Same data, same
number of steps, compile time excluded (one warm-up call each), one process, so the ratio is
meaningful even on a busy machine. Prints a JSON line with both rates and the ratio.

    python benchmarks/zoo.py --population 32 --steps 8
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp

from tessera.transforms.zoo import sampling as zoo_sampling
from tessera.training.zoo import population as zoo_population
from tessera.transforms.zoo.datasets import load_dataset


def _block(tree):
    jax.tree_util.tree_map(lambda a: a.block_until_ready(), tree)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="training steps per network (8 = 1 mnist5k epoch)")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--activation", default="relu")
    args = parser.parse_args(argv)

    ds = load_dataset(args.dataset)
    configs = [dataclasses.replace(zoo_sampling.sample_network(0, i), optimizer=args.optimizer,
                                   activation=args.activation, w_init="he_normal")
               for i in range(args.population)]
    masks = zoo_population.train_fraction_masks(configs, len(ds.train_indices))
    hparams = tuple(jnp.asarray([getattr(c, n) for c in configs], jnp.float32)
                    for n in ("learning_rate", "l2reg", "dropout"))
    batches = []
    for epoch in range(1, 100):
        for positions, valid in zoo_population.epoch_batches(0, epoch, len(ds.train_indices)):
            idx = ds.train_indices[positions]
            batches.append((masks[:, positions] * valid, ds.images[idx], ds.labels[idx]))
            if len(batches) == args.steps:
                break
        if len(batches) == args.steps:
            break

    def fresh_state():
        return zoo_population.init_state(configs, "he_normal", args.optimizer, 1)

    # vectorized population
    pop_step = jax.jit(jax.vmap(zoo_population.make_single_step(args.optimizer, args.activation),
                                in_axes=(0, 0, 0, None, None, None)))
    state = fresh_state()
    _block(pop_step(state, hparams, jnp.asarray(batches[0][0]), batches[0][1], batches[0][2], 0))
    start = time.perf_counter()
    for s, (w, x, y) in enumerate(batches):
        state = pop_step(state, hparams, jnp.asarray(w), x, y, s)
    _block(state)
    pop_seconds = time.perf_counter() - start

    # one network at a time, the same step jitted without vmap
    single = jax.jit(zoo_population.make_single_step(args.optimizer, args.activation))
    stacked = fresh_state()
    take = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)
    _block(single(take(stacked, 0), take(hparams, 0), jnp.asarray(batches[0][0][0]), batches[0][1], batches[0][2], 0))
    start = time.perf_counter()
    finals = []
    for i in range(args.population):
        one, hp = take(stacked, i), take(hparams, i)
        for s, (w, x, y) in enumerate(batches):
            one = single(one, hp, jnp.asarray(w[i]), x, y, s)
        _block(one)
        finals.append(one[0])
    single_seconds = time.perf_counter() - start

    # the two sides must have trained the same networks
    diff = max(float(jnp.max(jnp.abs(a - b))) for i, f in enumerate(finals)
               for a, b in zip(jax.tree_util.tree_leaves(take(state[0], i)), jax.tree_util.tree_leaves(f)))
    report = {
        "backend": jax.default_backend(), "population": args.population, "steps": args.steps,
        "batch_size": zoo_population.BATCH_SIZE,
        "vectorized_networks_per_s": args.population * args.steps / pop_seconds / args.steps,
        "sequential_networks_per_s": args.population * args.steps / single_seconds / args.steps,
        "vectorized_s": pop_seconds, "sequential_s": single_seconds,
        "speedup": single_seconds / pop_seconds, "max_param_diff": diff,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
