"""Synthetic 0.5 m/pixel satellite scenes with exact building footprints, in pure numpy.

No labelled imagery can be downloaded here, so demos, tests and the shipped model's training data are
rendered. The scenes are made hard in the ways real imagery is: textured soil and vegetation, trees,
roads, paved lots (roof-coloured but shadowless), buildings of ~4-40 m as rectangles and L-shapes at
any rotation, several roof materials (some close to the soil colour), cast shadows, dense clusters
with 1-2 m gaps, haze, blur and sensor noise. Everything is a function of the seed alone.

Pixel convention: a point is (x, y) = (column, row) with pixel (r, c) covering [c, c+1) x [r, r+1),
so a rasterio affine transform maps these coordinates straight to map coordinates.

Only numpy and scipy are imported at module level so the renderer also runs on accelerator machines
that lack the geo stack (training there renders scenes on the fly); shapely is imported lazily.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from tessera.training.buildings.footprints import (GSD_M, Building, Scene,  # noqa: F401 (re-exported)
                                                    coverage, local_uv, pixel_window,
                                                    rasterize_buildings)

# name -> (mean RGB, per-building colour jitter, gable shading strength, texture amplitude)
ROOF_MATERIALS: dict[str, tuple[tuple[int, int, int], int, float, float]] = {
    "metal": ((178, 182, 186), 22, 0.18, 4.0),
    "rusty_metal": ((150, 110, 85), 18, 0.15, 7.0),
    "tile": ((168, 84, 60), 20, 0.20, 6.0),
    "concrete": ((200, 196, 186), 20, 0.0, 5.0),
    "dark": ((72, 74, 80), 14, 0.0, 4.0),
    "thatch": ((140, 118, 84), 16, 0.10, 12.0),
    "painted_blue": ((70, 110, 150), 20, 0.15, 4.0),
    "painted_green": ((80, 125, 100), 18, 0.12, 4.0),
}
_MATERIAL_P = np.array([0.22, 0.10, 0.16, 0.18, 0.10, 0.10, 0.07, 0.07])


# ---------------------------------------------------------------------------------------------
# Textures.

def _noise(rng, shape, sigmas=(1.0, 3.0, 10.0, 40.0), weights=(0.25, 0.3, 0.3, 0.4)) -> np.ndarray:
    """Multi-octave smooth noise, zero mean, unit-ish std.

    Coarse octaves are drawn on a grid `sigma/2` times smaller and upsampled, which is ~50x faster than
    a wide Gaussian filter at full resolution and looks the same.
    """
    h, w = shape
    out = np.zeros(shape, np.float32)
    for s, wt in zip(sigmas, weights):
        f = max(1, int(s // 2))
        small = rng.standard_normal((h // f + 4, w // f + 4)).astype(np.float32)
        small = ndimage.gaussian_filter(small, s / f, mode="wrap")
        n = ndimage.zoom(small, f, order=1)[f:f + h, f:f + w] if f > 1 else small[2:2 + h, 2:2 + w]
        out += wt * n / (n.std() + 1e-6)
    return out / (out.std() + 1e-6)


def _ground(rng, shape) -> np.ndarray:
    """Soil with vegetation patches (rgb float32)."""
    soil_base = np.array(rng.choice([(170, 140, 105), (150, 125, 95), (185, 160, 125), (125, 105, 85)]),
                         np.float32) + rng.normal(0, 8, 3)
    tex = _noise(rng, shape)
    img = soil_base[None, None, :] + tex[..., None] * rng.uniform(8, 18)
    fine = rng.standard_normal(shape).astype(np.float32)
    img += ndimage.gaussian_filter(fine, 0.7)[..., None] * rng.uniform(3, 8)
    veg_field = _noise(rng, shape, sigmas=(6.0, 25.0, 60.0), weights=(0.2, 0.5, 0.6))
    veg = np.clip((veg_field - rng.uniform(0.0, 1.2)) * 1.5, 0, 1)
    grass = np.array([85, 115, 60], np.float32) + rng.normal(0, 8, 3)
    grass_img = grass[None, None, :] + _noise(rng, shape, sigmas=(0.8, 3.0), weights=(0.5, 0.5))[..., None] * 12
    return img * (1 - veg[..., None]) + grass_img * veg[..., None]


def _roads(rng, shape, img) -> np.ndarray:
    """Paint 1-3 straight roads across the scene; returns the road mask (bool)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    road_mask = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):
        theta = rng.uniform(0, math.pi)
        px, py = rng.uniform(0, w), rng.uniform(0, h)
        dist = np.abs(-(xx - px) * math.sin(theta) + (yy - py) * math.cos(theta))
        half = rng.uniform(5, 11)
        cov = np.clip(half - dist + 0.5, 0, 1)
        asphalt = rng.random() < 0.6
        color = np.array((88, 90, 94) if asphalt else (196, 170, 130), np.float32) + rng.normal(0, 6, 3)
        tex = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.0) * 6
        img[:] = img * (1 - cov[..., None]) + (color[None, None, :] + tex[..., None]) * cov[..., None]
        road_mask |= dist < half + 3
    return road_mask


def _paint_blob(img, rng, cy, cx, radius, color, tex_amp, shadow_dxy, shade=0.45):
    """Round textured canopy (a tree) with its cast shadow on whatever lies below."""
    h, w = img.shape[:2]
    r0, r1 = int(max(0, cy - radius - 30)), int(min(h, cy + radius + 30))
    c0, c1 = int(max(0, cx - radius - 30)), int(min(w, cx + radius + 30))
    if r1 <= r0 or c1 <= c0:
        return
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5
    wob = 1 + 0.15 * np.sin(np.arctan2(yy - cy, xx - cx) * rng.integers(3, 7) + rng.uniform(0, 6))
    sd = np.hypot(yy - cy - shadow_dxy[1], xx - cx - shadow_dxy[0]) / wob
    img[r0:r1, c0:c1] *= (1 - shade * np.clip(radius - sd + 0.5, 0, 1))[..., None]
    d = np.hypot(yy - cy, xx - cx) / wob
    cov = np.clip(radius - d + 0.5, 0, 1)[..., None]
    tex = ndimage.gaussian_filter(rng.standard_normal(d.shape).astype(np.float32), 0.8)[..., None] * tex_amp
    lit = (1 + 0.25 * ((xx - cx) * -shadow_dxy[0] + (yy - cy) * -shadow_dxy[1])[..., None]
           / (radius * math.hypot(*shadow_dxy) + 1e-6))
    img[r0:r1, c0:c1] = img[r0:r1, c0:c1] * (1 - cov) + (np.asarray(color)[None, None, :] * lit + tex) * cov


# ---------------------------------------------------------------------------------------------
# Layout.

def _random_size(rng) -> tuple[float, float]:
    """Building length, width in pixels: mostly houses, some sheds (~4 m), a few halls (~40 m)."""
    kind = rng.random()
    if kind < 0.15:
        length = rng.uniform(8, 16)
    elif kind < 0.88:
        length = rng.uniform(16, 48)
    else:
        length = rng.uniform(48, 80)
    width = length * rng.uniform(0.45, 1.0)
    return length, max(width, 8.0)


def _maybe_notch(rng, length, width, p=0.3):
    if rng.random() < p and length >= 20 and width >= 16:
        return (rng.uniform(0.3, 0.6) * length, rng.uniform(0.3, 0.6) * width)
    return None


def _fits(b: Building, occupied: np.ndarray, margin: int) -> bool:
    h, w = occupied.shape
    r0, r1, c0, c1 = b.bbox(pad=0)
    if r0 < margin or c0 < margin or r1 > h - margin or c1 > w - margin:
        return False
    inside = coverage(b, np.arange(r0, r1), np.arange(c0, c1), hard=True)
    return not occupied[r0:r1, c0:c1][inside].any()


def _occupy(b: Building, occupied: np.ndarray, grow: int = 1) -> None:
    r0, r1, c0, c1 = pixel_window(b, occupied.shape, pad=grow + 1)
    inside = coverage(b, np.arange(r0, r1), np.arange(c0, c1), hard=True)
    occupied[r0:r1, c0:c1] |= ndimage.binary_dilation(inside, iterations=grow)


def _layout(rng, shape, blocked: np.ndarray) -> list[Building]:
    """Dense clusters (rows with 1-2 m gaps) plus scattered buildings; no overlaps, off roads."""
    h, w = shape
    occupied = blocked.copy()
    buildings: list[Building] = []
    scale = h * w / 512**2
    for _ in range(max(1, int(round(rng.uniform(2.0, 5.0) * scale)))):
        theta = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(theta), math.sin(theta)
        ox, oy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        extent_u, extent_v = rng.uniform(100, 260), rng.uniform(80, 220)
        v = -extent_v / 2
        while v < extent_v / 2:
            depth = rng.uniform(16, 44)
            u = -extent_u / 2 + rng.uniform(0, 10)
            while u < extent_u / 2:
                length = rng.uniform(14, 50) if rng.random() < 0.9 else rng.uniform(8, 14)
                width = depth * rng.uniform(0.6, 1.0)
                vc = v + depth / 2 + rng.uniform(-1, 1) * (depth - width) / 2
                uc = u + length / 2
                b = Building(ox + uc * c - vc * s, oy + uc * s + vc * c, length, max(width, 8.0),
                             theta + rng.normal(0, 0.03) * (rng.random() < 0.3),
                             _maybe_notch(rng, length, width, 0.25), bool(rng.random() < 0.5))
                if rng.random() < 0.95 and _fits(b, occupied, 3):
                    buildings.append(b)
                    _occupy(b, occupied)
                gap = rng.uniform(2.0, 4.0) if rng.random() < 0.65 else rng.uniform(4.0, 24.0)
                u += length + gap
            v += depth + (rng.uniform(2.0, 4.0) if rng.random() < 0.4 else rng.uniform(4.0, 30.0))
    for _ in range(int(rng.uniform(15, 50) * scale)):
        length, width = _random_size(rng)
        b = Building(rng.uniform(0, w), rng.uniform(0, h), length, width, rng.uniform(0, 2 * math.pi),
                     _maybe_notch(rng, length, width), bool(rng.random() < 0.5))
        if _fits(b, occupied, 3):
            buildings.append(b)
            _occupy(b, occupied, grow=3)
    return buildings


# ---------------------------------------------------------------------------------------------
# Painting.

def _paint_building(img, rng, b: Building, sun_dir, shadow_len):
    """Cast the shadow onto the ground, then paint the roof with material, gable shading and edges."""
    shape = img.shape[:2]
    height_scale = rng.uniform(0.6, 1.6) * (1.5 if b.area_px() > 2500 else 1.0)
    sdx, sdy = sun_dir[0] * shadow_len * height_scale, sun_dir[1] * shadow_len * height_scale
    r0, r1, c0, c1 = pixel_window(b, shape, pad=3, dx=sdx, dy=sdy)
    rows, cols = np.arange(r0, r1), np.arange(c0, c1)
    shadow = np.zeros((r1 - r0, c1 - c0), np.float32)
    for t in np.linspace(0.2, 1.0, 5):
        shadow = np.maximum(shadow, coverage(b, rows, cols, dx=sdx * t, dy=sdy * t))
    cov = coverage(b, rows, cols)
    img[r0:r1, c0:c1] *= (1 - rng.uniform(0.45, 0.65) * shadow * (1 - cov))[..., None]

    name = rng.choice(list(ROOF_MATERIALS), p=_MATERIAL_P)
    base, jitter, gable, tex_amp = ROOF_MATERIALS[name]
    color = np.clip(np.asarray(base, np.float32) * rng.uniform(0.8, 1.15) + rng.normal(0, jitter * 0.4, 3), 20, 245)
    u, v = local_uv(b, rows, cols)
    shade = np.ones_like(u)
    if gable > 0 and rng.random() < 0.8:
        ridge_along_u = b.length >= b.width
        side = v if ridge_along_u else u
        lit_side = 1.0 if rng.random() < 0.5 else -1.0
        shade = 1 + lit_side * gable * np.tanh(side * 2.0)
        if name in ("metal", "painted_blue", "painted_green", "rusty_metal") and rng.random() < 0.6:
            along = u if not ridge_along_u else v
            shade = shade * (1 + 0.05 * np.sin(along * rng.uniform(2.0, 3.0)))
    hl, hw = b.length / 2, b.width / 2
    edge = np.minimum(hl - np.abs(u), hw - np.abs(v))
    if gable == 0 and rng.random() < 0.7:  # parapet: a thin bright or dark rim on flat roofs
        shade = shade * np.where(edge < 1.0, rng.choice([0.8, 1.15]), 1.0)
    tex = ndimage.gaussian_filter(rng.standard_normal(u.shape).astype(np.float32), 0.8) * tex_amp
    roof = color[None, None, :] * shade[..., None] + tex[..., None]
    if rng.random() < 0.15:  # rooftop clutter: a tank or AC unit
        ku, kv = rng.uniform(-hl / 2, hl / 2), rng.uniform(-hw / 2, hw / 2)
        box = (np.abs(u - ku) < 2.0) & (np.abs(v - kv) < 2.0)
        roof[box] = roof[box] * rng.uniform(0.5, 1.3)
    img[r0:r1, c0:c1] = img[r0:r1, c0:c1] * (1 - cov[..., None]) + roof * cov[..., None]


def _distractors(img, rng, blocked, sun_dir, scale):
    """Paved lots and courtyards: roof-coloured rectangles without height, hence without shadow."""
    h, w = img.shape[:2]
    for _ in range(int(rng.uniform(1, 5) * scale)):
        length, width = rng.uniform(20, 90), rng.uniform(16, 60)
        b = Building(rng.uniform(0, w), rng.uniform(0, h), length, width, rng.uniform(0, math.pi))
        r0, r1, c0, c1 = pixel_window(b, (h, w))
        if r1 <= r0 or c1 <= c0:
            continue
        cov = coverage(b, np.arange(r0, r1), np.arange(c0, c1))
        if (blocked[r0:r1, c0:c1] & (cov > 0)).any():
            continue
        color = np.array(rng.choice([(190, 188, 180), (120, 120, 118), (160, 140, 120)]), np.float32)
        tex = ndimage.gaussian_filter(rng.standard_normal(cov.shape).astype(np.float32), 1.2) * 6
        img[r0:r1, c0:c1] = (img[r0:r1, c0:c1] * (1 - cov[..., None])
                             + (color[None, None, :] + tex[..., None]) * cov[..., None])
        blocked[r0:r1, c0:c1] |= cov > 0


def render_scene(seed: int, size: int | tuple[int, int] = 512) -> Scene:
    """Render the scene for `seed` (pure function of seed and size).

    Args:
      seed: any non-negative int; different seeds give different scenes.
      size: pixels per side (or (height, width)); 0.5 m/pixel, so 512 covers 256 m x 256 m.

    Returns:
      A Scene with the uint8 image, the instance map and the building footprints.
    """
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng([int(seed), 0x5CE7E])
    shape = (h, w)
    scale = h * w / 512**2
    img = _ground(rng, shape)
    road_mask = _roads(rng, shape, img)
    blocked = road_mask.copy()
    sun_az = rng.uniform(0, 2 * math.pi)
    sun_dir = (math.cos(sun_az), math.sin(sun_az))
    shadow_len = rng.uniform(3.0, 9.0)  # pixels of shadow for a typical (~4 m) building
    _distractors(img, rng, blocked, sun_dir, scale)
    buildings = _layout(rng, shape, blocked)
    for b in buildings:
        _paint_building(img, rng, b, sun_dir, shadow_len)
    instances = rasterize_buildings(buildings, shape)
    # Trees last: canopies partly hide ground and, rarely, building edges, as in real imagery.
    building_near = ndimage.binary_dilation(instances > 0, iterations=4)
    for _ in range(int(rng.uniform(10, 80) * scale)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if building_near[int(cy), int(cx)] or road_mask[int(cy), int(cx)]:
            continue
        radius = rng.uniform(3, 10)
        color = np.array([45, 75, 40], np.float32) + rng.normal(0, 8, 3)
        _paint_blob(img, rng, cy, cx, radius, color, 10,
                    (sun_dir[0] * shadow_len * 1.2, sun_dir[1] * shadow_len * 1.2))
    # Atmosphere and sensor: haze (spatially varying), colour cast, blur, noise.
    haze_amount = rng.uniform(0.0, 0.3) ** 1.3
    haze = np.clip(haze_amount + 0.12 * _noise(rng, shape, sigmas=(60.0, 120.0), weights=(0.5, 0.5)), 0, 0.6)
    haze_color = np.array([205, 210, 220], np.float32) + rng.normal(0, 6, 3)
    img = img * (1 - haze[..., None]) + haze_color[None, None, :] * haze[..., None]
    img = img * rng.uniform(0.9, 1.1, 3)[None, None, :]
    img = ndimage.gaussian_filter(img, (rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9), 0))
    img += rng.normal(0, rng.uniform(1.5, 4.0), img.shape).astype(np.float32)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return Scene(image=image, instances=instances, buildings=tuple(buildings), seed=int(seed))
