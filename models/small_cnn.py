"""The Small CNN Zoo architecture (Unterthiner et al. 2020): 4,970 parameters, TF/Keras layout.

3 x Conv2D(16, 3x3, stride 2, VALID) each followed by the activation and dropout, global average
pooling, Dense(10). Kernels are HWIO for convolutions and (in, out) for the dense layer, which is
both flax's and Keras's layout, so a row of the zoo's `weights.npy` maps onto a Keras model of the
same architecture without transposes. The flat vector follows the released zoo: per layer, bias
before kernel (`LAYOUT`).

`Model` is the flax module; `apply` is the same forward pass as a pure function with a traced
dropout rate, which is what the vectorized trainer vmaps over.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from tessera.models.base import JaxModel
from tessera.models.zoo_weights import read_weight_row

NUM_CLASSES = 10
FILTERS = 16
CONV_LAYERS = ("conv2d", "conv2d_1", "conv2d_2")
DENSE_LAYER = "dense"
LAYERS = CONV_LAYERS + (DENSE_LAYER,)
ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def param_shapes(channels: int = 1, filters: int = FILTERS) -> dict[str, dict[str, tuple]]:
    """Shapes of every variable, keyed like the flax parameter tree."""
    shapes, fan_in = {}, channels
    for name in CONV_LAYERS:
        shapes[name] = {"bias": (filters,), "kernel": (3, 3, fan_in, filters)}
        fan_in = filters
    shapes[DENSE_LAYER] = {"bias": (NUM_CLASSES,), "kernel": (filters, NUM_CLASSES)}
    return shapes


def layout(channels: int = 1, filters: int = FILTERS) -> list[tuple[str, int, int, tuple]]:
    """Rows `(varname, start_idx, end_idx, shape)` of the flat vector, bias before kernel per layer.

    Variable names follow the released zoo's Keras names (`sequential/conv2d/kernel:0`).
    """
    rows, start = [], 0
    for layer, variables in param_shapes(channels, filters).items():
        for var in ("bias", "kernel"):
            shape = variables[var]
            end = start + math.prod(shape)
            rows.append((f"sequential/{layer}/{var}:0", start, end, shape))
            start = end
    return rows


def num_params(channels: int = 1, filters: int = FILTERS) -> int:
    return layout(channels, filters)[-1][2]


NUM_PARAMS = num_params()  # 4970 for grayscale inputs


def layout_csv(channels: int = 1, filters: int = FILTERS) -> str:
    """`layout.csv` text, as in the release: `varname,start_idx,end_idx,shape`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["varname", "start_idx", "end_idx", "shape"])
    for name, start, end, shape in layout(channels, filters):
        writer.writerow([name, start, end, str(tuple(shape))])
    return buf.getvalue()


def flatten(params, table=None) -> jnp.ndarray:
    """Parameter tree -> flat vector in layout order. Works under vmap (batched leaves stay batched)."""
    table = table or layout(_channels(params))
    parts = []
    for name, _, _, _ in table:
        layer, var = name.split("/")[1], name.split("/")[2].split(":")[0]
        leaf = params[layer][var]
        parts.append(jnp.reshape(leaf, leaf.shape[: leaf.ndim - len(_shape(table, name))] + (-1,)))
    return jnp.concatenate(parts, axis=-1)


def unflatten(vector, table=None) -> dict:
    """Flat vector (numpy or jax, shape (..., P)) -> parameter tree, using `layout.csv` rows."""
    table = table or layout()
    params: dict = {}
    lead = tuple(vector.shape[:-1])
    for name, start, end, shape in table:
        layer, var = name.split("/")[1], name.split("/")[2].split(":")[0]
        params.setdefault(layer, {})[var] = vector[..., start:end].reshape(lead + tuple(shape))
    return params


def _shape(table, name):
    return next(row[3] for row in table if row[0] == name)


def _channels(params) -> int:
    return int(params[CONV_LAYERS[0]]["kernel"].shape[-2])


def _dropout(x, rate, rng):
    """Inverted dropout with a traced rate (flax's nn.Dropout wants a static rate).

    The keep mask compares 16-bit slices of `jax.random.bits` with `keep * 2**16`: on XLA:CPU this
    is about 10x cheaper than `jax.random.bernoulli` (which draws a float per element) and was most
    of a zoo training step; the rate is resolved to 1/65536.
    """
    keep = 1.0 - rate
    size = x.size
    bits = jax.random.bits(rng, ((size + 1) // 2,), jnp.uint32)
    halves = jnp.concatenate([bits & 0xFFFF, bits >> 16])[:size].reshape(x.shape)
    mask = halves < jnp.round(keep * 65536.0).astype(jnp.uint32)
    return jnp.where(mask, x / jnp.maximum(keep, 1e-6), 0.0)


def conv3x3_stride2(x, kernel):
    """3x3 stride-2 VALID convolution as a sum of nine shifted matmuls.

    Equal to `lax.conv_general_dilated` (tested). XLA:CPU runs this form several times faster than
    its own convolution once gradients are taken (the stride-2 input gradient is slow there), and
    under `vmap` over networks it stays a batched matmul instead of a grouped convolution.
    """
    h, w = (x.shape[-3] - 3) // 2 + 1, (x.shape[-2] - 3) // 2 + 1
    out = 0.0
    for i in range(3):
        for j in range(3):
            out = out + x[..., i:i + 2 * h - 1:2, j:j + 2 * w - 1:2, :] @ kernel[i, j]
    return out


def apply(params, images, *, activation: str = "relu", dropout_rate=0.0, rng=None):
    """Logits for NHWC `images`; dropout after each conv activation when `rng` is given."""
    act = ACTIVATIONS[activation]
    x = images
    rngs = jax.random.split(rng, len(CONV_LAYERS)) if rng is not None else [None] * len(CONV_LAYERS)
    for name, layer_rng in zip(CONV_LAYERS, rngs):
        x = conv3x3_stride2(x, params[name]["kernel"]) + params[name]["bias"]
        x = act(x)
        if layer_rng is not None:
            x = _dropout(x, dropout_rate, layer_rng)
    x = jnp.mean(x, axis=(1, 2))
    return x @ params[DENSE_LAYER]["kernel"] + params[DENSE_LAYER]["bias"]


class Model(nn.Module):
    """Flax module of the zoo CNN; parameter names and shapes match `layout()`.

    Its output equals `apply(params, x)` (tested); call with `rngs={"dropout": key}` and
    `train=True` for dropout.
    """
    activation: str = "relu"
    filters: int = FILTERS

    @nn.compact
    def __call__(self, x, *, train: bool = False, dropout_rate: float = 0.0):
        act = ACTIVATIONS[self.activation]
        for name in CONV_LAYERS:
            x = nn.Conv(self.filters, (3, 3), strides=(2, 2), padding="VALID", name=name)(x)
            x = act(x)
            if train:
                x = _dropout(x, dropout_rate, self.make_rng("dropout"))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(NUM_CLASSES, name=DENSE_LAYER)(x)


def init_params(seed: int = 0, channels: int = 1) -> dict:
    """A randomly initialised network (flax's default initializers)."""
    variables = Model().init(jax.random.PRNGKey(seed), jnp.zeros((1, 28, 28, channels)))
    return jax.tree_util.tree_map(np.asarray, dict(variables["params"]))


def load(path: str, *, activation: str = "relu") -> JaxModel:
    """Load one network: `.npz`/`.msgpack` params, or `ZOO_DIR/weights.npy#ROW` (a zoo row).

    The row form reads `layout.csv` next to `weights.npy` and only the requested row (mmap).
    """
    if "#" in path:
        weights_path, row = path.rsplit("#", 1)
        vector, table = read_weight_row(weights_path, int(row))
        params = unflatten(np.asarray(vector, np.float32), table)
    else:
        from tessera.models.params_io import load_params
        params = load_params(path)
    channels = _channels(params)

    def apply_fn(p, batch):
        return apply(p, batch, activation=activation)

    return JaxModel(apply_fn=apply_fn, params=params, input_shape=(28, 28, channels),
                    input_dtype="float32", name=f"small_cnn_{activation}")


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant is the real, already tiny, network: one random one as a .msgpack."""
    from tessera import fileio
    from tessera.models.params_io import save_params

    path = fileio.join(directory, "small_cnn_tiny.msgpack")
    save_params(path, init_params(seed))
    return path
