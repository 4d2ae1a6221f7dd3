"""Networks trained per second and per CPU-second: one vmapped population vs the same networks
one at a time, and how close each gets to the machine's matmul peak.

Both sides run the same per-network step (`zoo_population.make_single_step`): the population side
jits `vmap(step)` once, the baseline jits `step` once and loops over networks. Same data, same
number of steps, compile time excluded (one warm-up call each), one process, so the ratio is
meaningful even on a busy machine. Each side reports wall and CPU time (`time.process_time`: all
cores of this process), networks (trained for --steps steps) per second and per CPU-second, and
the achieved GFLOP/s (one network's step FLOPs from XLA's cost analysis, times networks and
steps) against a float32 matmul peak measured in the same run.

Under `vmap` the batch is not batched (all networks of a population see the same examples), so
XLA slices the first layer's input once and runs each of its nine shifted products as one
(N*H*W, C) x (C, P*F) matmul for the whole population; `shared_first_layer` in the report checks
that in the traced step (the first product's image operand has no network axis).

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


def _flops(jitted, *args) -> float:
    """FLOPs of one call, from XLA's cost analysis of the compiled function."""
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0))


def first_layer_is_shared(params, images) -> bool:
    """True when, under vmap over networks, the first layer's first product takes the image batch
    without a network axis: one (N*H*W, C) x (C, P*F) matmul for the whole population."""
    from tessera.models import small_cnn
    forward = jax.vmap(lambda p, x: small_cnn.apply(p, x), in_axes=(0, None))
    jaxpr = jax.make_jaxpr(forward)(params, images)
    first = next(e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general")
    lhs, rhs = (v.aval.shape for v in first.invars)
    return len(lhs) == images.ndim and rhs[0] == jax.tree_util.tree_leaves(params)[0].shape[0]


def matmul_peak_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Float32 matmul GFLOP/s of this machine and backend, best of `repeats` (the roofline)."""
    a = jnp.asarray(jax.random.normal(jax.random.PRNGKey(0), (n, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    _block(f(a, a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _block(f(a, a))
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def _rates(side: str, networks: int, wall: float, cpu: float, useful_flops: float,
           xla_flops: float, peak: float) -> dict:
    """`useful_flops`: one network's step FLOPs x networks x steps, the same work for both sides
    (XLA's own count of the vmapped step is reported too; it counts broadcasts differently)."""
    gflops = useful_flops / wall / 1e9
    return {f"{side}_networks_per_s": networks / wall, f"{side}_networks_per_cpu_s": networks / cpu,
            f"{side}_s": wall, f"{side}_cpu_s": cpu, f"{side}_xla_gflop_per_call": xla_flops / 1e9,
            f"{side}_gflops": gflops, f"{side}_fraction_of_peak": gflops / peak}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="training steps per network (8 = 1 mnist5k epoch)")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--activation", default="relu")
    args = parser.parse_args(argv)
    report = compare(load_dataset(args.dataset), args.population, args.steps, args.optimizer,
                     args.activation)
    print(json.dumps(report, indent=2))
    return report


def compare(ds, population: int, steps: int, optimizer: str = "adam",
            activation: str = "relu") -> dict:
    """The measurement itself, on a loaded ZooDataset (benchmarks/zoo_gpu.py calls it too)."""
    args = argparse.Namespace(population=population, steps=steps, optimizer=optimizer,
                              activation=activation)
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
    pop_args = (state, hparams, jnp.asarray(batches[0][0]), batches[0][1], batches[0][2], 0)
    pop_flops = _flops(pop_step, *pop_args)
    shared = first_layer_is_shared(state[0], jnp.asarray(batches[0][1]))
    _block(pop_step(*pop_args))
    start, cpu_start = time.perf_counter(), time.process_time()
    for s, (w, x, y) in enumerate(batches):
        state = pop_step(state, hparams, jnp.asarray(w), x, y, s)
    _block(state)
    pop_seconds, pop_cpu = time.perf_counter() - start, time.process_time() - cpu_start

    # one network at a time, the same step jitted without vmap
    single = jax.jit(zoo_population.make_single_step(args.optimizer, args.activation))
    stacked = fresh_state()
    take = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)
    single_args = (take(stacked, 0), take(hparams, 0), jnp.asarray(batches[0][0][0]), batches[0][1],
                   batches[0][2], 0)
    single_flops = _flops(single, *single_args)
    _block(single(*single_args))
    start, cpu_start = time.perf_counter(), time.process_time()
    finals = []
    for i in range(args.population):
        one, hp = take(stacked, i), take(hparams, i)
        for s, (w, x, y) in enumerate(batches):
            one = single(one, hp, jnp.asarray(w[i]), x, y, s)
        _block(one)
        finals.append(one[0])
    single_seconds, single_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = matmul_peak_gflops()

    # the two sides must have trained the same networks
    diff = max(float(jnp.max(jnp.abs(a - b))) for i, f in enumerate(finals)
               for a, b in zip(jax.tree_util.tree_leaves(take(state[0], i)), jax.tree_util.tree_leaves(f)))
    n, steps = args.population, args.steps
    report = {
        "backend": jax.default_backend(), "population": n, "steps": steps,
        "batch_size": zoo_population.BATCH_SIZE, "matmul_peak_gflops": peak,
        **_rates("vectorized", n, pop_seconds, pop_cpu, single_flops * n * steps, pop_flops, peak),
        **_rates("sequential", n, single_seconds, single_cpu, single_flops * n * steps, single_flops,
                 peak),
        "speedup": single_seconds / pop_seconds, "cpu_speedup": single_cpu / pop_cpu,
        "shared_first_layer": shared,
        "max_param_diff": diff,
    }
    return report


if __name__ == "__main__":
    main()
