"""Training targets and batches for the building U-Net (numpy only, no JAX, no Beam).

The recipe follows Sirko et al. 2021 (Open Buildings): a per-pixel loss weighted up between nearby
buildings (the U-Net paper's separation weights, so touching buildings come out as separate blobs),
mixup, and self-training on unlabelled tiles (the loss side of the latter lives in
`transforms.buildings_trainer`). Keeping this module free of JAX lets worker processes render and
prepare data in parallel before the accelerator is touched.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True, eq=False)
class Tile:
    """One training tile: image HxWx3 uint8; mask HxW uint8 (or None when unlabelled); weights HxW."""
    image: np.ndarray
    mask: np.ndarray | None = None
    weights: np.ndarray | None = None
    key: str = ""


def rasterize_instances(geometries, transform, shape) -> np.ndarray:
    """Burn polygons (already in the raster's CRS) into an int32 instance map, 0 = background.

    Args:
      geometries: iterable of shapely geometries.
      transform: the raster's affine transform.
      shape: (height, width).
    """
    from rasterio import features  # lazy: accelerator machines train from rendered scenes only

    shapes = [(g, i + 1) for i, g in enumerate(geometries) if g is not None and not g.is_empty]
    if not shapes:
        return np.zeros(shape, np.int32)
    return features.rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32",
                              all_touched=False)


def separation_weights(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """U-Net separation weights: 1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2)) on background pixels.

    d1 and d2 are the distances (pixels) to the nearest and second-nearest building, so the narrow
    ground strips between neighbouring buildings get weights near 1 + w0 and open ground gets ~1.
    Distances are computed per building in a window of 3 sigma around it, which is exact wherever the
    weight is non-negligible and keeps the cost linear in the number of buildings.
    """
    h, w = instances.shape
    reach = int(math.ceil(3 * sigma))
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    for i, sl in enumerate(ndimage.find_objects(instances)):
        if sl is None:
            continue
        r0, r1 = max(0, sl[0].start - reach), min(h, sl[0].stop + reach)
        c0, c1 = max(0, sl[1].start - reach), min(w, sl[1].stop + reach)
        inside = instances[r0:r1, c0:c1] == i + 1
        d = ndimage.distance_transform_edt(~inside).astype(np.float32)
        a, b = d1[r0:r1, c0:c1], d2[r0:r1, c0:c1]
        d2[r0:r1, c0:c1] = np.where(d < a, a, np.minimum(b, d))
        d1[r0:r1, c0:c1] = np.minimum(a, d)
    total = d1 + d2
    extra = np.where(np.isfinite(total), w0 * np.exp(-np.square(total) / (2 * sigma**2)), 0.0)
    extra[instances > 0] = 0.0
    return (1.0 + extra).astype(np.float32)


def make_tile(image: np.ndarray, instances: np.ndarray | None, *, w0: float, sigma: float, key: str = "") -> Tile:
    if instances is None:
        return Tile(image=image, key=key)
    return Tile(image=image, mask=(instances > 0).astype(np.uint8),
                weights=separation_weights(instances, w0, sigma), key=key)


def synthetic_tile(seed: int, size: int = 512, w0: float = 10.0, sigma: float = 5.0,
                   labelled: bool = True) -> Tile:
    """Render scene `seed` and turn it into a training tile (a module-level function: pool-friendly)."""
    from tessera.training.buildings.scenes import render_scene

    scene = render_scene(seed, size)
    return make_tile(scene.image, scene.instances if labelled else None, w0=w0, sigma=sigma,
                     key=f"synth:{seed}")


# ---------------------------------------------------------------------------------------------
# Chips: every tile cut into equal square chips so the whole set stacks into device-resident arrays.

def chip_tiles(tiles: list[Tile], chip: int) -> dict[str, np.ndarray]:
    """Cut tiles into chip x chip pieces (zero-padded at the far edges) and stack them.

    Returns `image` uint8 [C, chip, chip, 3] and `weights` float32 [C, chip, chip], where padding has
    weight 0 (so it never counts in a loss); labelled tiles also give `mask` uint8 [C, chip, chip].
    Tiles must be all labelled or all unlabelled.
    """
    images, masks, weights = [], [], []
    for t in tiles:
        h, w = t.image.shape[:2]
        for r in range(0, max(h - chip // 4, 1), chip):
            for c in range(0, max(w - chip // 4, 1), chip):
                sl = (slice(r, r + chip), slice(c, c + chip))
                images.append(_pad_to(t.image[sl], chip))
                valid = np.ones(t.image.shape[:2], np.float32)[sl] if t.weights is None else t.weights[sl]
                weights.append(_pad_to(valid, chip))
                if t.mask is not None:
                    masks.append(_pad_to(t.mask[sl], chip))
    out = {"image": np.stack(images), "weights": np.stack(weights).astype(np.float32)}
    if masks:
        if len(masks) != len(images):
            raise ValueError("chip_tiles needs all tiles labelled or all unlabelled")
        out["mask"] = np.stack(masks)
    return out


def _pad_to(a: np.ndarray, size: int) -> np.ndarray:
    ph, pw = max(0, size - a.shape[0]), max(0, size - a.shape[1])
    if ph == 0 and pw == 0:
        return a
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad)
