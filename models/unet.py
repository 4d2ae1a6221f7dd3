"""U-Net (Ronneberger et al. 2015) in Flax for building segmentation, as in Open Buildings.

Contract used by the inference pipeline (`load(path).apply_fn(params, batch)`):
  batch: float32 [N, H, W, 3] in [0, 1], H and W multiples of 16 (four 2x poolings);
  returns: building probability, float32 [N, H, W].

Small on purpose (base 16 channels, capped at 128): it must run on CPU workers and ship in the repo.
GroupNorm instead of BatchNorm keeps the model stateless (params only), so train and eval agree.
"""
from __future__ import annotations

import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MULTIPLE = 16  # H and W must be multiples of this (2 ** depth)
DEFAULT_CONFIG = {"base": 16, "max_channels": 128, "depth": 4}
TINY_CONFIG = {"base": 4, "max_channels": 8, "depth": 2}  # fast to compile in tests


def _groups(channels: int) -> int:
    return 4 if channels % 4 == 0 and channels >= 8 else 1


class ConvBlock(nn.Module):
    """Two 3x3 conv -> GroupNorm -> ReLU layers."""
    channels: int

    @nn.compact
    def __call__(self, x):
        for i in range(2):
            x = nn.Conv(self.channels, (3, 3), name=f"conv{i}")(x)
            x = nn.GroupNorm(num_groups=_groups(self.channels), name=f"norm{i}")(x)
            x = nn.relu(x)
        return x


class Model(nn.Module):
    """U-Net returning one building logit per pixel, [N, H, W, 1]."""
    base: int = 16
    max_channels: int = 128
    depth: int = 4

    def channels(self, level: int) -> int:
        return min(self.base * 2**level, self.max_channels)

    @nn.compact
    def __call__(self, x):
        x = (x - 0.5) / 0.25  # inputs in [0, 1]
        skips = []
        for level in range(self.depth):
            x = ConvBlock(self.channels(level), name=f"enc{level}")(x)
            skips.append(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = ConvBlock(self.channels(self.depth), name="bottleneck")(x)
        for level in reversed(range(self.depth)):
            n, h, w, c = x.shape
            x = jax.image.resize(x, (n, h * 2, w * 2, c), method="nearest")
            x = jnp.concatenate([x, skips[level]], axis=-1)
            x = ConvBlock(self.channels(level), name=f"dec{level}")(x)
        return nn.Conv(1, (1, 1), name="head")(x)


def fill_nodata(batch):
    """Fill nodata (pixels that are exactly 0 in every band, in runs of at least 5x5) before the net.

    Windows that reach past a raster's edge or into its nodata collar arrive zero-filled, and a
    black wall makes a CNN see edges and blobs there (false buildings along every scene border).
    Outside the bounding box of valid pixels, nodata is filled by mirroring the valid area (what
    np.pad(mode="reflect") does for a rectangular valid area); what is left (holes, collars of
    rotated scenes) gets the image's mean valid colour. Isolated black pixels (deep shadow) are data
    and stay. Valid pixels are never changed.
    """
    x = jnp.asarray(batch, jnp.float32)
    n, h, w, _ = x.shape
    zero = jnp.max(x, axis=-1, keepdims=True) <= 0.0
    pool = lambda a, f: f(a, (5, 5), strides=(1, 1), padding="SAME")
    nodata = pool(-pool(-zero.astype(jnp.float32), nn.max_pool), nn.max_pool)  # opening: runs >= 5x5
    nodata = (nodata[..., 0] > 0.5) & zero[..., 0]
    valid = ~nodata

    def bounds(v, length):
        idx = jnp.arange(length)
        return (jnp.min(jnp.where(v, idx, length), axis=1), jnp.max(jnp.where(v, idx, -1), axis=1))

    def mirror(length, lo, hi):
        span = jnp.maximum(hi - lo, 1)
        t = jnp.mod(jnp.arange(length)[None] - lo[:, None], 2 * span[:, None])
        t = jnp.where(t > span[:, None], 2 * span[:, None] - t, t)
        return jnp.clip(lo[:, None] + t, 0, length - 1)

    r0, r1 = bounds(valid.any(axis=2), h)
    c0, c1 = bounds(valid.any(axis=1), w)
    rows, cols = mirror(h, r0, r1), mirror(w, c0, c1)
    take = jax.vmap(lambda img, r, c: img[r[:, None], c[None, :]])
    mirrored, mirrored_valid = take(x, rows, cols), take(valid, rows, cols)
    count = jnp.maximum(valid.sum(axis=(1, 2)), 1)[:, None, None, None]
    mean = (x * valid[..., None]).sum(axis=(1, 2), keepdims=True) / count
    filler = jnp.where(mirrored_valid[..., None], mirrored, mean)
    return jnp.where(nodata[..., None], filler, x)


def logits_fn(model: Model, params, batch):
    """Per-pixel building logits [N, H, W] (training uses this; inference uses `probability_fn`)."""
    return model.apply({"params": params}, batch)[..., 0]


def probability_fn(model: Model, params, batch):
    """Building probability [N, H, W] float32 for batch [N, H, W, 3] in [0, 1] (nodata = all-zero)."""
    return jax.nn.sigmoid(logits_fn(model, params, fill_nodata(batch))).astype(jnp.float32)


def init_params(model: Model, seed: int = 0, size: int = 32):
    """Fresh parameters: LeCun-normal conv kernels, zero biases, unit GroupNorm scales (flax's
    defaults), drawn with numpy from `seed`.

    Shapes come from `jax.eval_shape` and values from numpy because XLA-compiling flax's threefry
    initializers costs ~15 s of CPU per model, which the tests and CPU training would pay every time.
    """
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3), jnp.float32))
    rng = np.random.default_rng([int(seed), 0x0E7])
    flat = flax.traverse_util.flatten_dict(shapes["params"])
    out = {}
    for path in sorted(flat):
        shape, name = flat[path].shape, path[-1]
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            out[path] = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
        elif name == "scale":
            out[path] = np.ones(shape, np.float32)
        else:
            out[path] = np.zeros(shape, np.float32)
    return flax.traverse_util.unflatten_dict(out)


def config_from_params(params) -> dict[str, int]:
    """Recover (base, max_channels, depth) from parameter shapes, so a msgpack file is self-describing."""
    depth = sum(1 for k in params if k.startswith("enc"))
    base = int(params["enc0"]["conv0"]["kernel"].shape[-1])
    max_channels = int(params["bottleneck"]["conv0"]["kernel"].shape[-1])
    return {"base": base, "max_channels": max_channels, "depth": depth}


def count_params(params) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def to_float32(params):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)


def load(path: str):
    """Load a U-Net checkpoint (flax msgpack, float16 or float32) as a `models.base.JaxModel`."""
    from tessera.models import params_io
    from tessera.models.base import JaxModel

    params = to_float32(params_io.load_params(path))
    model = Model(**config_from_params(params))
    return JaxModel(apply_fn=functools.partial(probability_fn, model), params=params,
                    input_shape=None, input_dtype=np.float32, name="unet_buildings")


def card_path(path: str) -> str:
    """The training card beside a checkpoint (`buildings-train` writes X.json next to X.msgpack)."""
    return (path[: -len(".msgpack")] if path.endswith(".msgpack") else path) + ".json"


CARD_DEFAULTS = {"min_confidence": 0.0, "threshold": 0.5}  # without a card, or a card that names none


def card_defaults(path: str | None) -> dict[str, float]:
    """The inference settings a model's card recommends (`min_confidence`, the instance confidence
    to keep, and `threshold`, the pixel probability a building starts at; both chosen on data the
    model was not trained on), with CARD_DEFAULTS for what it does not name; `path` None: the
    shipped model. Thresholds belong to one model: another model's scores mean other things.

    Raises:
      ValueError: the card is not JSON, a value is not a number, or not in its range
        (min_confidence in [0, 1], threshold in (0, 1)).
    """
    import json

    from tessera import fileio
    from tessera.models.base import SHIPPED_UNET

    card = card_path(path or SHIPPED_UNET)
    if not fileio.exists(card):
        return dict(CARD_DEFAULTS)
    try:
        named = json.loads(fileio.read_bytes(card))
        values = {k: named.get(k, default) for k, default in CARD_DEFAULTS.items()}
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{card}: not a JSON object ({err})") from None
    for key, value in values.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        inside = number and (0.0 <= value <= 1.0 if key == "min_confidence" else 0.0 < value < 1.0)
        if not inside:
            allowed = "[0, 1]" if key == "min_confidence" else "(0, 1)"
            raise ValueError(f"{card}: {key} must be a number in {allowed} (got {value!r})")
    return {k: float(v) for k, v in values.items()}


def inference_thresholds(path: str | None, threshold: float | None = None,
                         min_confidence: float | None = None) -> dict[str, float]:
    """`threshold` and `min_confidence` as given, each one not given (None) from the model's card
    (`card_defaults`); the card is read only when one is missing."""
    given = {"threshold": threshold, "min_confidence": min_confidence}
    card = card_defaults(path) if None in given.values() else {}
    return {k: card[k] if v is None else v for k, v in given.items()}


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant (TINY_CONFIG: ~2k parameters, two poolings) as a real msgpack checkpoint."""
    from tessera import fileio
    from tessera.models import params_io

    path = fileio.join(directory, "unet_tiny.msgpack")
    params_io.save_params(path, init_params(Model(**TINY_CONFIG), seed=seed))
    return path
