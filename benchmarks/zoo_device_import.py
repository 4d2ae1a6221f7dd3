"""Turn the weights that `zoo_device_run.py` brought back into a zoo directory (release layout).

The device run kept only each network's final checkpoint and its metrics file did not come back
with the same run, so test accuracy and loss are recomputed here, on CPU, from the imported
weights with the zoo's own forward pass (train metrics are left NaN). Usage:
    python benchmarks/zoo_device_import.py DEVICE_OUT_DIR ZOO_DIR EPOCHS
"""
import glob
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tessera.models import small_cnn
from tessera.transforms.zoo import release as zoo_release
from tessera.transforms.zoo import sampling as zoo_sampling
from tessera.fileio import atomic_write_json, join
from tessera.transforms.core.outputs import write_manifest
from tessera.transforms.zoo.datasets import load_dataset


def main(src: str, out: str, epochs: int) -> None:
    weights = np.concatenate([np.load(f) for f in sorted(glob.glob(f"{src}/final_weights_*.npy"))])
    ds = load_dataset("mnist5k")
    x, y = ds.images[ds.test_indices], ds.labels[ds.test_indices]
    acc, loss = np.full(len(weights), np.nan), np.full(len(weights), np.nan)
    for act in zoo_sampling.ACTIVATIONS:
        def one(p, act=act):
            logits = small_cnn.apply(p, x, activation=act)
            return (jnp.mean(jnp.argmax(logits, -1) == y),
                    jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)))
        fn = jax.jit(jax.vmap(one))
        idx = [i for i in range(len(weights)) if zoo_sampling.sample_network(0, i).activation == act]
        for s in range(0, len(idx), 100):
            part = idx[s:s + 100]
            a, l = fn(small_cnn.unflatten(jnp.asarray(weights[part])))
            acc[part], loss[part] = np.asarray(a), np.asarray(l)
            print(act, s, len(idx), flush=True)
    rows = []
    for i in range(len(weights)):
        c = zoo_sampling.sample_network(0, i)
        rows.append({"network_index": i, "step": epochs, "diverged": not np.isfinite(weights[i]).all(),
                     **zoo_sampling.config_columns(c), "config.dataset": "mnist5k",
                     "train_loss": np.nan, "train_accuracy": np.nan,
                     "test_loss": float(loss[i]), "test_accuracy": float(acc[i])})
    shard = zoo_release.write_shard(out, "pop-00000", weights, rows)
    zoo_release.assemble(out, [shard])
    zoo_release.write_layout(out)
    atomic_write_json(join(out, "dataset.json"), ds.description())
    write_manifest(out, workload="cnn-zoo", config={"dataset": "mnist5k", "num_networks": len(weights),
                   "epochs": epochs, "seed": 0, "population": 96, "source": "device run, final checkpoints"},
                   counts={"networks": len(weights)})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
