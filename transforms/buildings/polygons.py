"""Building probabilities of one window -> building polygons, each owned by exactly one window.

Pure numpy/scipy/shapely/rasterio.features; no Beam, no file I/O.

Instances: pixels above `threshold` form the building mask; touching buildings are separated by a
marker watershed (markers are the high-confidence cores, `core_threshold`, which the model keeps
apart because its loss weights the gaps between buildings); cores smaller than the smallest
building (`min_core_px`) are not markers, since a confidence dip inside one roof would otherwise
cut it into slivers; mask components without a core are kept as one instance. Instances below `min_area_px` are dropped; confidence is the mean probability
inside the instance.

Ownership (why every building comes out exactly once and whole): windows overlap by `overlap`
pixels, and the non-overlapping cores of all windows tile the pixel grid shared by adjacent files.
An instance is emitted only by the window whose core contains its pixel centroid; any building
smaller than overlap/2 around its centroid is then seen whole by that window. Instances that touch
the window edge anyway are flagged `truncated` (and counted) rather than silently cut.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

Counter = Callable[[str, int], None]

_FOUR = ndimage.generate_binary_structure(2, 1)


def _no_count(_name: str, _n: int = 1) -> None:
    return None


def label_instances(prob: np.ndarray, valid: np.ndarray | None = None, *, threshold: float = 0.5,
                    core_threshold: float = 0.8, min_area_px: int = 1,
                    min_core_px: int = 0) -> tuple[np.ndarray, int]:
    """Label building instances in a probability map.

    Args:
      prob: [H, W] building probability.
      valid: [H, W] bool, False where the input was nodata (never part of a building).
      threshold: probability above which a pixel belongs to a building.
      core_threshold: probability of the cores used as watershed markers to split touching buildings.
      min_area_px: instances smaller than this are dropped.
      min_core_px: cores smaller than this are not markers (a dip in confidence inside one building
        must not cut off a sliver of it).

    Returns:
      (labels, n): int32 labels (0 = background, 1..n consecutive), 4-connected instances.
    """
    prob = np.asarray(prob, dtype=np.float32)
    mask = prob >= threshold
    if valid is not None:
        mask &= valid
    components, n_comp = ndimage.label(mask, structure=_FOUR)
    if n_comp == 0:
        return components.astype(np.int32), 0
    cores, n_cores = ndimage.label(mask & (prob >= core_threshold), structure=_FOUR)
    if n_cores and min_core_px > 1:
        cores, n_cores = _drop_small(cores, min_core_px)
    # A component with fewer than two cores needs no splitting; watershed only where it matters.
    if n_cores == 0 or not np.any(_components_with_multiple_cores(components, cores, n_comp)):
        labels = components
    else:
        labels = _split_touching(prob, mask, components, n_comp, cores, n_cores)
    return _drop_small(labels, min_area_px)


def _components_with_multiple_cores(components, cores, n_comp) -> np.ndarray:
    on = cores > 0
    n_cores = int(cores.max())
    pairs = np.unique(components[on].astype(np.int64) * (n_cores + 1) + cores[on])  # 1-D: fast sort
    return np.bincount(pairs // (n_cores + 1), minlength=n_comp + 1) > 1


def _split_touching(prob, mask, components, n_comp, cores, n_cores) -> np.ndarray:
    """Marker watershed on 1 - prob: cores flood outwards until they meet at the probability saddle."""
    markers = cores.astype(np.int32)
    has_core = np.zeros(n_comp + 1, bool)
    has_core[np.unique(components[cores > 0])] = True
    coreless = mask & ~has_core[components]
    markers[coreless] = components[coreless] + n_cores  # coreless components are their own marker
    markers[~mask] = -1  # background marker keeps floods inside the building mask
    relief = np.round((1.0 - np.clip(prob, 0, 1)) * 254).astype(np.uint8)
    relief[~mask] = 255
    flooded = ndimage.watershed_ift(relief, markers, structure=_FOUR)
    flooded[~mask] = 0
    flooded[flooded < 0] = 0
    # Each flooded region inside one component; relabel connected pieces so instances stay 4-connected.
    out = np.zeros_like(components, dtype=np.int32)
    next_label = 0
    for region_id, sl in enumerate(ndimage.find_objects(flooded), start=1):
        if sl is None:
            continue
        pieces, k = ndimage.label(flooded[sl] == region_id, structure=_FOUR)
        if k == 0:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        keep = pieces == (np.argmax(sizes) + 1)  # a stray disconnected sliver joins nothing
        next_label += 1
        out[sl][keep] = next_label
    return out


def _drop_small(labels: np.ndarray, min_area_px: int) -> tuple[np.ndarray, int]:
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(1, min_area_px)
    keep[0] = False
    new_ids = np.zeros(len(sizes), np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    return new_ids[labels], int(keep.sum())


def window_instances(prob: np.ndarray, valid: np.ndarray | None, *,
                     transform: tuple[float, float, float, float, float, float],
                     core: tuple[int, int, int, int], threshold: float = 0.5,
                     core_threshold: float = 0.8, min_area_px: int = 16, min_core_px: int = 0,
                     min_confidence: float = 0.0,
                     simplify_px: float = 0.5, count: Counter = _no_count) -> list[dict]:
    """The building polygons this window owns, in the raster CRS.

    Args:
      prob: [H, W] probabilities of the window.
      valid: [H, W] bool (False = nodata) or None.
      transform: affine (a, b, c, d, e, f) of the window's pixel (0, 0) corner.
      core: (row0, col0, row1, col1), half-open pixel box of the window that this window owns.
      threshold, core_threshold, min_area_px, min_core_px: see `label_instances`.
      min_confidence: instances with a lower mean probability are dropped.
      simplify_px: Douglas-Peucker tolerance in pixels, removes the raster staircase.
      count: `count(name, n)` callback for counters (instances_found, instances_not_owned, ...).

    Returns:
      list of {"geometry": shapely Polygon (CRS units), "confidence": float, "area_px": int,
      "centroid_px": (row, col) in window pixels, "truncated": bool}.
    """
    import rasterio.features
    from affine import Affine
    from shapely.geometry import shape

    labels, n = label_instances(prob, valid, threshold=threshold, core_threshold=core_threshold,
                                min_area_px=min_area_px, min_core_px=min_core_px)
    if n == 0:
        return []
    count("instances_found", n)
    flat = labels.ravel()
    h, w = labels.shape
    areas = np.bincount(flat, minlength=n + 1)[1:]
    # Pixel-centre centroids and mean probability per label in three bincounts (no Python loop).
    row_sum = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w), minlength=n + 1)[1:]
    col_sum = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h), minlength=n + 1)[1:]
    centroids = np.stack([row_sum / areas, col_sum / areas], axis=1) + 0.5
    prob_sum = np.bincount(flat, weights=np.asarray(prob, np.float64).ravel(), minlength=n + 1)[1:]
    confidence = prob_sum / areas
    r0, c0, r1, c1 = core
    owned = ((centroids[:, 0] >= r0) & (centroids[:, 0] < r1)
             & (centroids[:, 1] >= c0) & (centroids[:, 1] < c1))
    count("instances_not_owned", int((~owned).sum()))
    confident = confidence >= min_confidence
    count("instances_below_min_confidence", int((owned & ~confident).sum()))
    keep = owned & confident
    if not keep.any():
        return []
    edge = np.zeros(n + 1, bool)
    edge[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    keep_ids = np.zeros(n + 1, bool)
    keep_ids[1:] = keep
    affine = Affine(*transform)
    polygons: dict[int, object] = {}
    for geom, value in rasterio.features.shapes(labels, mask=keep_ids[labels], connectivity=4,
                                                transform=affine):
        poly = shape(geom)
        value = int(value)
        if value not in polygons or poly.area > polygons[value].area:
            polygons[value] = poly
    tolerance = simplify_px * abs(affine.a)
    out = []
    for value in sorted(polygons):
        poly = polygons[value]
        if tolerance > 0:
            simplified = poly.simplify(tolerance, preserve_topology=True)
            poly = simplified if simplified.is_valid and not simplified.is_empty else poly
        truncated = bool(edge[value])
        if truncated:
            count("instances_truncated", 1)
        out.append({"geometry": poly, "confidence": float(confidence[value - 1]),
                    "area_px": int(areas[value - 1]),
                    "centroid_px": (float(centroids[value - 1, 0]), float(centroids[value - 1, 1])),
                    "truncated": truncated})
    return out
