"""Appearance randomization: pull synthetic training images toward real image statistics.

A renderer never gets real radiometry quite right (tone curves, haze, sensor response), so some
synthetic tiles have their grey-level distribution matched to a real unlabelled tile's (histogram
matching, per channel; a panchromatic reference makes the synthetic tile panchromatic too). The
labels do not move: histogram matching is a monotone remapping of intensities only, and Fourier
amplitude matching (Yang and Soatto 2020, FDA) swaps only the lowest spatial frequencies' amplitude
(haze, illumination gradients, the real tile's coarse texture energy), keeping every phase, so
edges stay where they were.
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


def match_fourier(image: np.ndarray, reference: np.ndarray, beta: float) -> np.ndarray:
    """[H, W, 3] uint8 `image` with the amplitude spectrum inside the central `beta` share of
    frequencies (per axis) taken from `reference` (same size, valid everywhere); phases kept."""
    src = np.fft.fft2(image.astype(np.float32), axes=(0, 1))
    ref = np.fft.fft2(reference.astype(np.float32), axes=(0, 1))
    h, w = image.shape[:2]
    bh, bw = max(1, int(h * beta)), max(1, int(w * beta))
    amp, phase = np.abs(src), np.angle(src)
    ref_amp = np.abs(ref)
    for rows in (slice(0, bh), slice(h - bh, h)):
        for cols in (slice(0, bw), slice(w - bw, w)):
            amp[rows, cols] = ref_amp[rows, cols]
    out = np.real(np.fft.ifft2(amp * np.exp(1j * phase), axes=(0, 1)))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


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
        crop = ref[r:r + ch, c:c + cw]
        image = tile.image
        if crop.shape == image.shape and crop.any(axis=-1).all() and rng.random() < 0.5:
            if is_panchromatic(crop):
                grey = np.clip(np.round(image.astype(np.float32) @ LUMA), 0, 255).astype(np.uint8)
                image = np.repeat(grey[..., None], 3, axis=-1)
            image = match_fourier(image, crop, float(rng.uniform(0.005, 0.03)))
        matched = match_image(image, crop)
        out.append(Tile(image=matched, mask=tile.mask, weights=tile.weights, key=tile.key + "+matched"))
    return out
