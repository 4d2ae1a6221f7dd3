"""Building footprints of the synthetic scenes: shapes, rendered scenes, and their rasterization.

A footprint is a rotated rectangle, optionally notched into an L. Pixel convention: a point is
(x, y) = (column, row) with pixel (r, c) covering [c, c+1) x [r, r+1), so a rasterio affine
transform maps these coordinates straight to map coordinates.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

GSD_M = 0.5  # metres per pixel


@dataclasses.dataclass(frozen=True)
class Building:
    """One footprint: a rotated rectangle, optionally with one corner notch (an L-shape).

    All lengths in pixels. `notch` is (a, b): the notch spans a along the building's u axis and b
    along its v axis at the (+u, +v) corner; `mirror` flips v so both L chiralities occur.
    """
    cx: float
    cy: float
    length: float  # along u
    width: float  # along v
    angle: float  # radians, u axis direction in (x, y)
    notch: tuple[float, float] | None = None
    mirror: bool = False

    def vertices(self) -> np.ndarray:
        """Polygon ring (K, 2) in pixel (x, y) coordinates, counter-clockwise in u, v, not closed."""
        hl, hw = self.length / 2, self.width / 2
        if self.notch is None:
            uv = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
        else:
            a, b = self.notch
            uv = [(-hl, -hw), (hl, -hw), (hl, hw - b), (hl - a, hw - b), (hl - a, hw), (-hl, hw)]
        uv = np.asarray(uv, dtype=np.float64)
        if self.mirror:
            uv = uv[::-1] * np.array([1.0, -1.0])
        c, s = math.cos(self.angle), math.sin(self.angle)
        x = self.cx + uv[:, 0] * c - uv[:, 1] * s
        y = self.cy + uv[:, 0] * s + uv[:, 1] * c
        return np.stack([x, y], axis=1)

    def bbox(self, pad: float = 1.0) -> tuple[int, int, int, int]:
        v = self.vertices()
        return (int(math.floor(v[:, 1].min() - pad)), int(math.ceil(v[:, 1].max() + pad)),
                int(math.floor(v[:, 0].min() - pad)), int(math.ceil(v[:, 0].max() + pad)))

    def area_px(self) -> float:
        a = self.length * self.width
        return a - (self.notch[0] * self.notch[1] if self.notch else 0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """A rendered scene: `image` HxWx3 uint8, `instances` HxW int32 (0 = ground, i+1 = building i)."""
    image: np.ndarray
    instances: np.ndarray
    buildings: tuple[Building, ...]
    seed: int

    @property
    def mask(self) -> np.ndarray:
        return self.instances > 0

    def footprints(self) -> list[np.ndarray]:
        """Footprint rings in pixel (x, y) coordinates, one (K, 2) array per building."""
        return [b.vertices() for b in self.buildings]

    def polygons(self) -> list:
        """Footprints as shapely Polygons in pixel coordinates."""
        import shapely  # lazy: the renderer itself needs no shapely

        return [shapely.Polygon(v) for v in self.footprints()]


# ---------------------------------------------------------------------------------------------
# Rasterization: soft coverage (for anti-aliased painting) and the hard pixel-centre mask.

def local_uv(b: Building, rows: np.ndarray, cols: np.ndarray, dx: float = 0.0, dy: float = 0.0):
    y = rows[:, None] + 0.5 - (b.cy + dy)
    x = cols[None, :] + 0.5 - (b.cx + dx)
    c, s = math.cos(b.angle), math.sin(b.angle)
    u = x * c + y * s
    v = -x * s + y * c
    return u, (-v if b.mirror else v)


def coverage(b: Building, rows, cols, dx=0.0, dy=0.0, hard=False) -> np.ndarray:
    """Fraction of each pixel inside the footprint (approximate box-filter), or the centre test."""
    u, v = local_uv(b, rows, cols, dx, dy)
    hl, hw = b.length / 2, b.width / 2
    if hard:
        inside = (np.abs(u) < hl) & (np.abs(v) < hw)
        if b.notch is not None:
            a, bb = b.notch
            inside &= ~((u > hl - a) & (v > hw - bb))
        return inside
    cov = np.clip(hl - np.abs(u) + 0.5, 0, 1) * np.clip(hw - np.abs(v) + 0.5, 0, 1)
    if b.notch is not None:
        a, bb = b.notch
        cov *= 1.0 - np.clip(u - (hl - a) + 0.5, 0, 1) * np.clip(v - (hw - bb) + 0.5, 0, 1)
    return cov


def pixel_window(b: Building, shape, pad=2.0, dx=0.0, dy=0.0):
    r0, r1, c0, c1 = b.bbox(pad)
    r0, r1 = int(max(0, r0 + min(0, math.floor(dy)))), int(min(shape[0], r1 + max(0, math.ceil(dy))))
    c0, c1 = int(max(0, c0 + min(0, math.floor(dx)))), int(min(shape[1], c1 + max(0, math.ceil(dx))))
    return r0, r1, c0, c1


def rasterize_buildings(buildings, shape) -> np.ndarray:
    """Instance map (int32, 0 = ground) of buildings by pixel-centre containment."""
    out = np.zeros(shape, np.int32)
    for i, b in enumerate(buildings):
        r0, r1, c0, c1 = pixel_window(b, shape)
        if r1 <= r0 or c1 <= c0:
            continue
        inside = coverage(b, np.arange(r0, r1), np.arange(c0, c1), hard=True)
        out[r0:r1, c0:c1][inside] = i + 1
    return out
