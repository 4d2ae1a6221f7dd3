"""Vectorized training of a population of zoo CNNs (pure JAX, no Beam).

One population shares optimizer, activation and kernel init, so one jitted step serves all of its
networks: `jax.vmap` runs over parameters, optimizer state, learning rate, L2, dropout, init std,
dropout keys and per-network data masks. The train fraction is a mask: every network sees the same
shuffled batch stream (global, seeded by the zoo seed and epoch, so independent of grouping) and
weights the loss by its own keyed subset of the training set. A network whose parameters become
non-finite stops (its updates are dropped from then on) and is marked diverged.

The per-network step is also exposed unbatched (`make_single_step`) so the benchmark can train the
same networks one at a time with the same code.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tessera.models import small_cnn
from tessera.transforms.zoo.datasets import ZooDataset
from tessera.transforms.zoo.sampling import NetworkConfig, checkpoint_epochs, network_seed

BATCH_SIZE = 512


def _initializer(w_init: str, init_std):
    inits = jax.nn.initializers
    return {
        "he_normal": lambda: inits.he_normal(),  # truncated normal, fan_in, as Keras
        "glorot_normal": lambda: inits.glorot_normal(),
        "orthogonal": lambda: inits.orthogonal(),
        "RandomNormal": lambda: inits.normal(init_std),
        "TruncatedNormal": lambda: (lambda key, shape, dtype=jnp.float32:
                                    init_std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)),
    }[w_init]()


def init_params(key, init_std, *, w_init: str, channels: int = 1) -> dict:
    """Kernels from `w_init` (Keras semantics), zero biases; vmappable over key and init_std."""
    init = _initializer(w_init, init_std)
    shapes = small_cnn.param_shapes(channels)
    keys = jax.random.split(key, len(shapes))
    return {layer: {"bias": jnp.zeros(s["bias"], jnp.float32), "kernel": init(k, s["kernel"], jnp.float32)}
            for k, (layer, s) in zip(keys, shapes.items())}


def _transform(optimizer: str) -> optax.GradientTransformation:
    """Direction of the update before `-lr` scaling (Keras defaults: eps 1e-7, rho 0.9)."""
    return {"adam": lambda: optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7),
            "sgd": optax.identity,
            "rmsprop": lambda: optax.scale_by_rms(decay=0.9, eps=1e-7, eps_in_sqrt=False)}[optimizer]()


def _all_finite(tree) -> jnp.ndarray:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def make_single_step(optimizer: str, activation: str) -> Callable:
    """One network's SGD step: (state, hparams, weights, x, y, step) -> state.

    state = (params, opt_state, key, alive); hparams = (lr, l2, dropout). Examples with weight 0
    (outside the network's train fraction, or batch padding) do not contribute.
    """
    tx = _transform(optimizer)

    def loss_fn(params, x, y, w, l2, dropout, rng):
        logits = small_cnn.apply(params, x, activation=activation, dropout_rate=dropout, rng=rng)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        data = jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1.0)
        reg = sum(jnp.sum(jnp.square(params[layer]["kernel"])) for layer in small_cnn.LAYERS)
        return data + l2 * reg

    def step_fn(state, hparams, w, x, y, step):
        params, opt_state, key, alive = state
        lr, l2, dropout = hparams
        grads = jax.grad(loss_fn)(params, x, y, w, l2, dropout, jax.random.fold_in(key, step))
        direction, new_opt = tx.update(grads, opt_state, params)
        new_params = jax.tree_util.tree_map(lambda p, d: p - lr * d, params, direction)
        update = alive & (jnp.sum(w) > 0)
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(update, a, b), new, old)
        params, opt_state = pick(new_params, params), pick(new_opt, opt_state)
        return params, opt_state, key, alive & _all_finite(params)

    return step_fn


@functools.lru_cache(maxsize=None)
def population_step(optimizer: str, activation: str) -> Callable:
    """The jitted, vmapped step (one compile per population shape)."""
    step = make_single_step(optimizer, activation)
    return jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None, None, None)), donate_argnums=(0,))


@functools.lru_cache(maxsize=None)
def population_eval(activation: str) -> Callable:
    """Per network: (sum of CE, number correct, weight) over one chunk of examples."""
    def one(params, w, x, y):
        logits = small_cnn.apply(params, x, activation=activation)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
        return jnp.sum(ce * w), jnp.sum(correct * w), jnp.sum(w)
    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))


@dataclasses.dataclass
class PopulationResult:
    """Per network and checkpoint: flat weights and metrics (NaN once a network diverged)."""
    indices: np.ndarray  # (P,)
    epochs: tuple[int, ...]  # checkpoint epochs (C,)
    weights: np.ndarray  # (P, C, NUM_PARAMS) float32
    metrics: dict[str, np.ndarray]  # name -> (P, C) float64
    diverged: np.ndarray  # (P,) bool


def train_fraction_masks(configs: Sequence[NetworkConfig], num_train: int) -> np.ndarray:
    """(P, num_train) float32: each network's keyed subset of `round(fraction * num_train)` examples."""
    masks = np.zeros((len(configs), num_train), np.float32)
    for row, config in enumerate(configs):
        keep = max(1, int(round(config.train_fraction * num_train)))
        order = np.random.default_rng(network_seed(config.seed, 0, "subset")).permutation(num_train)
        masks[row, order[:keep]] = 1.0
    return masks


def epoch_batches(zoo_seed: int, epoch: int, num_train: int, batch_size: int = BATCH_SIZE):
    """The global batch stream of one epoch: (positions, valid) pairs, last batch padded."""
    order = np.random.default_rng(network_seed(zoo_seed, epoch, "epoch")).permutation(num_train)
    for start in range(0, num_train, batch_size):
        chunk = order[start:start + batch_size]
        valid = np.ones(batch_size, np.float32)
        valid[len(chunk):] = 0.0
        yield np.pad(chunk, (0, batch_size - len(chunk))), valid


def init_state(configs: Sequence[NetworkConfig], w_init: str, optimizer: str, channels: int):
    """Stacked (params, opt_state, key, alive) for a population."""
    seeds = np.array([c.seed for c in configs], np.uint64)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds & np.uint64(0x7FFFFFFF), jnp.uint32))
    keys = jax.vmap(lambda k, s: jax.random.fold_in(k, s))(keys, jnp.asarray(seeds >> np.uint64(32), jnp.uint32))
    init_keys, dropout_keys = jax.vmap(lambda k: jax.random.split(k, 2))(keys).transpose(1, 0, 2)
    stds = jnp.asarray([c.init_std for c in configs], jnp.float32)
    params = jax.jit(jax.vmap(functools.partial(init_params, w_init=w_init, channels=channels)))(init_keys, stds)
    opt_state = jax.vmap(_transform(optimizer).init)(params)
    alive = jnp.ones(len(configs), bool)
    return params, opt_state, dropout_keys, alive


def evaluate(activation: str, params, alive, dataset: ZooDataset, masks: np.ndarray, chunk: int = BATCH_SIZE):
    """Per-network train metrics (over its own subset) and test metrics; NaN for diverged networks."""
    fn = population_eval(activation)
    out = {}
    for split, indices, weights in (("train", dataset.train_indices, masks),
                                    ("test", dataset.test_indices, None)):
        totals = np.zeros((3, masks.shape[0]))
        for start in range(0, len(indices), chunk):
            idx = indices[start:start + chunk]
            pad = chunk - len(idx)
            x = np.pad(dataset.images[idx], ((0, pad), (0, 0), (0, 0), (0, 0)))
            y = np.pad(dataset.labels[idx], (0, pad))
            if weights is None:
                w = np.broadcast_to(np.pad(np.ones(len(idx), np.float32), (0, pad)), (masks.shape[0], chunk))
            else:
                w = np.pad(weights[:, start:start + chunk], ((0, 0), (0, pad)))
            totals += np.stack([np.asarray(t, np.float64) for t in fn(params, jnp.asarray(w), x, y)])
        dead = ~np.asarray(alive)
        loss = np.where(dead, np.nan, totals[0] / np.maximum(totals[2], 1))
        acc = np.where(dead, np.nan, totals[1] / np.maximum(totals[2], 1))
        out[f"{split}_loss"], out[f"{split}_accuracy"] = loss, acc
    return out


def train_population(configs: Sequence[NetworkConfig], dataset: ZooDataset, *, zoo_seed: int,
                     epochs: int, optimizer: str, activation: str, w_init: str,
                     batch_size: int = BATCH_SIZE) -> PopulationResult:
    """Train networks that share (optimizer, activation, w_init) together; checkpoints per epoch list.

    Raises:
        ValueError: configs disagree with the population's discrete choices.
    """
    for c in configs:
        if (c.optimizer, c.activation, c.w_init) != (optimizer, activation, w_init):
            raise ValueError(f"network {c.index} does not belong to population {optimizer}/{activation}/{w_init}")
    channels = dataset.images.shape[-1]
    ckpts = checkpoint_epochs(epochs)
    state = init_state(configs, w_init, optimizer, channels)
    hparams = tuple(jnp.asarray([getattr(c, name) for c in configs], jnp.float32)
                    for name in ("learning_rate", "l2reg", "dropout"))
    masks = train_fraction_masks(configs, len(dataset.train_indices))
    step_fn = population_step(optimizer, activation)
    flatten = jax.jit(jax.vmap(small_cnn.flatten))
    weights = np.zeros((len(configs), len(ckpts), small_cnn.num_params(channels)), np.float32)
    metrics = {k: np.zeros((len(configs), len(ckpts))) for k in
               ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    ever_dead = np.zeros(len(configs), bool)
    step = 0
    for epoch in range(epochs + 1):
        if epoch > 0:
            for positions, valid in epoch_batches(zoo_seed, epoch, len(dataset.train_indices), batch_size):
                idx = dataset.train_indices[positions]
                w = jnp.asarray(masks[:, positions] * valid)
                state = step_fn(state, hparams, w, dataset.images[idx], dataset.labels[idx], step)
                step += 1
        if epoch in ckpts:
            column = ckpts.index(epoch)
            params, _, _, alive = state
            alive = np.asarray(alive)
            ever_dead |= ~alive
            weights[:, column] = np.asarray(flatten(params))
            for name, values in evaluate(activation, params, ~ever_dead, dataset, masks).items():
                metrics[name][:, column] = values
    return PopulationResult(np.array([c.index for c in configs]), ckpts, weights, metrics, ever_dead)
