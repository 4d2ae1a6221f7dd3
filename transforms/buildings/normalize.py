"""The one band normalization the U-Net sees, in training and in inference (pure numpy).

A raster's bands become float32 [H, W, 3] in [0, 1]: 8-bit bands are divided by 255 (they are
already display-stretched); any other type (11/12/16-bit pan or multispectral, floats) is stretched
per band between the 2nd and 98th percentile of the raster's valid pixels, one stretch per file, so
window borders never show. One band (panchromatic) is repeated three times. `buildings-train`
reads GeoTIFFs and renders synthetic scenes through these same functions, so a 16-bit pan tile
looks the same to the model in both.
"""
from __future__ import annotations

import numpy as np

LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0


def band_ranges(dtype: str, sample: np.ma.MaskedArray | None,
                n_bands: int = 1) -> tuple[tuple[float, float], ...]:
    """Per-band (low, high) raw values mapped to 0 and 1.

    Args:
      dtype: the raster's data type; "uint8" is absolute (0, 255).
      sample: [bands, h, w] values with nodata masked (a decimated read is enough).
      n_bands: bands in the output when `dtype` is uint8 (no sample needed then).
    """
    if dtype == "uint8":
        return tuple((0.0, 255.0) for _ in range(n_bands))
    out = []
    for band in sample:
        values = np.ma.asarray(band).compressed()
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
        out.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return tuple(out)


def normalize_bands(raw: np.ndarray, ranges: tuple[tuple[float, float], ...]) -> np.ndarray:
    """[bands, H, W] raw values -> [H, W, 3] float32 in [0, 1]; one band is repeated (panchromatic)."""
    raw = np.asarray(raw, dtype=np.float32)
    lo = np.asarray([r[0] for r in ranges], np.float32)[:, None, None]
    hi = np.asarray([r[1] for r in ranges], np.float32)[:, None, None]
    scaled = np.clip((raw - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
    if scaled.shape[0] == 1:
        scaled = np.repeat(scaled, 3, axis=0)
    return np.ascontiguousarray(np.moveaxis(scaled, 0, -1))


def normalize_raster(raw: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """A whole raster [bands, H, W] (1 or 3 bands) -> [H, W, 3] float32, invalid pixels 0.

    The ranges come from the raster itself, exactly as `raster.inspect_raster` derives them for
    inference (which uses a decimated read of the same file).
    """
    raw = np.asarray(raw)
    valid = np.ones(raw.shape[1:], bool) if valid is None else np.asarray(valid, bool)
    sample = np.ma.MaskedArray(raw, mask=np.broadcast_to(~valid, raw.shape))
    image = normalize_bands(raw, band_ranges(raw.dtype.name, sample, raw.shape[0]))
    image[~valid] = 0.0
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] in [0, 1] -> uint8 (how training holds images in memory: 1/255 steps)."""
    return np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
