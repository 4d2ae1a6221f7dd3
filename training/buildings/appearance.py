"""Appearance randomization: pull synthetic training images toward real image statistics.

A renderer never gets real radiometry quite right (tone curves, haze, sensor response), so some
synthetic tiles have their grey-level distribution matched to a real unlabelled tile's (histogram
matching, per channel; a panchromatic reference makes the synthetic tile panchromatic too). The
labels do not move: the matching is a monotone remapping of intensities only.
"""
from __future__ import annotations

import numpy as np

from tessera.training.buildings.data import Tile

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _cdf(values: np.ndarray) -> np.ndarray:
    counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    return np.cumsum(counts) / max(counts.sum(), 1.0)


def match_channel(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """uint8 `source` remapped so its histogram follows the (non-empty, valid-only) `reference`."""
    lut = np.searchsorted(_cdf(reference), _cdf(source), side="left").clip(0, 255).astype(np.uint8)
    return lut[source]


def is_panchromatic(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def match_image(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 `image` matched to `reference` ([h, w, 3] uint8, all-zero pixels = nodata)."""
    valid = reference.any(axis=-1)
    if not valid.any():
        return image
    if is_panchromatic(reference):
        grey = np.clip(np.round(image.astype(np.float32) @ LUMA), 0, 255).astype(np.uint8)
        return np.repeat(match_channel(grey, reference[..., 0][valid])[..., None], 3, axis=-1)
    return np.stack([match_channel(image[..., c], reference[..., c][valid]) for c in range(3)], -1)


def randomize_appearance(tiles: list[Tile], references: list[Tile], p: float, seed: int) -> list[Tile]:
    """A `p` share of `tiles` (chosen by seed) matched to a random crop of a random reference."""
    if not references or p <= 0:
        return list(tiles)
    rng = np.random.default_rng([int(seed), 0xA99])
    out = []
    for tile in tiles:
        if rng.random() >= p:
            out.append(tile)
            continue
        ref = references[rng.integers(len(references))].image
        h, w = ref.shape[:2]
        ch, cw = min(h, tile.image.shape[0]), min(w, tile.image.shape[1])
        r, c = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        matched = match_image(tile.image, ref[r:r + ch, c:c + cw])
        out.append(Tile(image=matched, mask=tile.mask, weights=tile.weights, key=tile.key + "+matched"))
    return out
