"""Batch sampling and augmentation in JAX, run inside the jitted training step.

The chips live on the accelerator; cropping, the eight rotations/flips, photometric jitter and
mixup all happen there, from a PRNG key (and mixup's few coefficients drawn on the host), so a
step's batch is a pure function of (data, key, mixup coefficients).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _dihedral(a, code):
    """One of the 8 rotations/flips of a square [H, W, ...] array, chosen by code in 0..7."""
    a = jnp.where(code & 1, jnp.swapaxes(a, 0, 1), a)
    a = jnp.where(code & 2, a[::-1], a)
    return jnp.where(code & 4, a[:, ::-1], a)


def sample_crops(key, chips: dict, batch_size: int, crop: int) -> dict:
    """Random crops (with a random dihedral transform) from stacked chips.

    Args:
      chips: `image` uint8 [C, S, S, 3], `weights` float [C, S, S], optionally `mask` uint8 [C, S, S].
    Returns:
      `image` float32 [N, crop, crop, 3] in [0, 1], `weights` and `mask` (if given) float32 [N, crop, crop].
    """
    chips = {k: jnp.asarray(v) for k, v in chips.items()}
    n_chips, size = chips["image"].shape[0], chips["image"].shape[1]
    # one RNG call for all four draws: each threefry call is a separate (slow to compile) kernel
    hi = jnp.array([[n_chips], [size - crop + 1], [size - crop + 1], [8]])
    idx, rows, cols, codes = jax.random.randint(key, (4, batch_size), 0, hi)

    def one(i, r, c, code):
        out = {}
        for name, arr in chips.items():
            a = arr[i]
            starts = (r, c) + (0,) * (a.ndim - 2)
            sizes = (crop, crop) + a.shape[2:]
            out[name] = _dihedral(jax.lax.dynamic_slice(a, starts, sizes), code).astype(jnp.float32)
        return out

    batch = jax.vmap(one)(idx, rows, cols, codes)
    batch["image"] = batch["image"] / 255.0
    return batch


def photometric(key, x):
    """Per-image, per-band gain/offset/gamma, occasional haze and noise: band scaling must not matter."""
    n = x.shape[0]
    k_u, k_noise = jax.random.split(key)
    u = jax.random.uniform(k_u, (12, n, 1, 1, 1))  # one draw, sliced: cheaper to compile than 12
    lerp = lambda v, lo, hi: lo + (hi - lo) * v
    gain = lerp(u[0:3], 0.75, 1.25).transpose(1, 2, 3, 0, 4)[..., 0] * lerp(u[3], 0.85, 1.15)
    offset = lerp(u[4], -0.08, 0.08) + lerp(u[5:8], -0.03, 0.03).transpose(1, 2, 3, 0, 4)[..., 0]
    gamma = lerp(u[8], 0.8, 1.25)
    haze = lerp(u[9], 0.0, 0.25) * (u[10] < 0.3)
    y = jnp.power(jnp.clip(x, 1e-6, 1), gamma) * gain + offset
    y = y * (1 - haze) + 0.82 * haze
    y = y + lerp(u[11], 0.0, 0.02) * jax.random.normal(k_noise, x.shape)
    return jnp.clip(y, 0, 1)


def mixup(batch: dict, lam, perm) -> dict:
    """mixup (Zhang et al. 2018) for segmentation: blend images, masks and weight maps alike.

    Example i becomes lam[i] * example i + (1 - lam[i]) * example perm[i]; the targets become soft
    where the two differ. `mixup_params` draws lam ~ Beta(alpha, alpha) folded to >= 0.5 (the
    example's own content dominates) on the host: JAX's Beta sampler is a rejection loop that is
    slow to compile, and n numbers a step cost the host nothing.
    """
    n = batch["image"].shape[0]
    lam = jnp.asarray(lam, jnp.float32)
    out = dict(batch)
    for name in ("image", "mask", "weights"):
        a = batch[name]
        lm = lam.reshape((n,) + (1,) * (a.ndim - 1))
        out[name] = lm * a + (1 - lm) * a[perm]
    return out


def mixup_params(rng, n: int, alpha: float = 0.4):
    """(lam float32 [n] in [0.5, 1], perm int32 [n]) for `mixup`, from a numpy Generator."""
    lam = rng.beta(alpha, alpha, n).astype("float32")
    return np.maximum(lam, 1 - lam), rng.permutation(n).astype("int32")
