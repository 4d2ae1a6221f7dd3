"""Ground that is not a building but looks like one to a model trained on rendered scenes.

Real pan tiles showed the U-Net taking flat, bright, sharp-edged surfaces for roofs: mown lawns,
back yards and patios beside houses, parking lots, courts, sand, and desert scrub. Each is drawn
here without height (no shadow, no wall), so the model has to learn that a roof is more than a
bright polygon. Everything is in render pixels of size `g` metres and a function of `rng`.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from tessera.training.buildings import world


def _stripes(shape, angle_deg, period_px, rng) -> np.ndarray:
    """Mowing stripes: alternate bands a mower's width apart, across the lawn's long side."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    a = np.radians(angle_deg)
    u = xx * np.cos(a) + yy * np.sin(a)
    return np.where(np.sin(2 * np.pi * u / period_px) > 0, 1.0, -1.0).astype(np.float32) * rng.uniform(0.03, 0.09)


def paint_lawn(img, mask, rng, g, angle_deg=None):
    """A mown lawn: one smooth grass tone with stripes and a fine grain, sharp at its edges."""
    if not mask.any():
        return
    angle = rng.uniform(0, 180) if angle_deg is None else angle_deg
    tone = world._color("grass" if rng.random() < 0.7 else "dry_grass", rng) * rng.uniform(0.8, 1.4)
    stripes = _stripes(mask.shape, angle, rng.uniform(1.6, 3.2) / g, rng) if rng.random() < 0.6 else 0.0
    grain = 0.02 * rng.standard_normal(mask.shape).astype(np.float32)
    value = (1 + stripes + grain)[mask]
    img[:, mask] = tone[:, None] * value[None]


def yards(img, rng, biome, px, built, streets, g):
    """Back yards, patios and fenced lots around houses: the lot (the house's rotated rectangle grown
    1.6-2.6x) minus the house, mown lawn or a bright bare surface, sometimes with a fence line."""
    from shapely import affinity
    if biome not in ("green", "arid", "town"):
        return
    n = img.shape[1]
    share = {"green": 0.6, "arid": 0.5, "town": 0.35}[biome]
    keep_out = ndimage.binary_dilation(built, iterations=max(1, int(0.5 / g))) | streets
    for poly in px:
        if rng.random() > share or poly.area * g * g > 600:
            continue
        rect = poly.minimum_rotated_rectangle
        lot = affinity.scale(rect, *rng.uniform(1.6, 2.6, 2), origin="centroid")
        lot = affinity.translate(lot, *rng.normal(0, 2.0 / g, 2))
        mask = world._fill([lot], (n, n)) & ~keep_out
        if mask.sum() * g * g < 20:
            continue
        surface = rng.choice(["lawn", "lawn", "dry_grass", "soil", "concrete", "gravel"])
        if surface == "lawn":
            xy = np.asarray(rect.exterior.coords)
            angle = np.degrees(np.arctan2(*(xy[1] - xy[0])[::-1]))
            paint_lawn(img, mask, rng, g, angle_deg=angle if rng.random() < 0.7 else None)
        else:
            world._paint(img, mask, world._color(surface, rng) * rng.uniform(0.9, 1.5), 0.04, rng)
        if rng.random() < 0.4:  # a fence or hedge along the lot line
            edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, int(0.4 / g)))
            img[:, edge] *= rng.choice([0.5, 0.7, 1.3])


def slabs(img, rng, built, streets, g):
    """Roof-like things that are not buildings: parking lots with rows of cars, courts, concrete
    yards, bare sand and large mown lawns; flat and shadowless, so only the missing height tells
    them apart."""
    import shapely
    from shapely import affinity
    n = img.shape[1]
    far = ndimage.distance_transform_edt(~built) * g > 4
    for _ in range(rng.poisson(rng.uniform(0.5, 4))):
        r, c = rng.integers(0, n, 2)
        if not far[r, c] or streets[r, c]:
            continue
        w, h = rng.uniform(8, 45) / g, rng.uniform(6, 30) / g
        angle = rng.uniform(0, 180)
        slab = affinity.translate(affinity.rotate(shapely.box(-w / 2, -h / 2, w / 2, h / 2), angle, origin=(0, 0)), c, r)
        mask = world._fill([slab], (n, n)) & far
        surface = rng.choice(["asphalt", "old_asphalt", "concrete", "soil", "gravel", "lawn"])
        if surface == "lawn":
            paint_lawn(img, mask, rng, g, angle_deg=angle)
            continue
        world._paint(img, mask, world._color(surface, rng), 0.06, rng)
        if surface in ("asphalt", "old_asphalt") and rng.random() < 0.7:  # cars parked in rows
            for t in np.arange(-w / 2 + 2 / g, w / 2 - 1 / g, 2.7 / g):
                if rng.random() < 0.4:
                    continue
                car = affinity.translate(shapely.box(t - 0.9 / g, -2.2 / g, t + 0.9 / g, 2.2 / g),
                                         0, rng.choice([-1, 1]) * (h / 2 - 2.8 / g))
                car = affinity.translate(affinity.rotate(car, angle, origin=(0, 0)), c, r)
                tone = rng.choice([0.05, 0.12, 0.35, 0.55, 0.65])
                world._paint(img, world._fill([car], (n, n)) & mask, np.array([tone] * 4, np.float32), 0.05, rng)


def shrubs(img, rng, open_ground, sun, shadow_per_m, g):
    """Desert scrub and garden bushes: small dark dots with short shadows, a texture real arid lots are
    full of (the model took them for buildings)."""
    n = img.shape[1]
    count = int(rng.uniform(0, 0.03) * (n * g) ** 2)
    if count == 0:
        return
    pts = rng.integers(0, n, (count, 2))
    pts = pts[open_ground[pts[:, 0], pts[:, 1]]]
    dots = np.zeros((n, n), np.float32)
    dots[pts[:, 0], pts[:, 1]] = rng.uniform(0.4, 1.5, len(pts)) / g
    radius = ndimage.maximum_filter(dots, size=max(3, int(3 / g)))
    dist = ndimage.distance_transform_edt(dots == 0)
    bush = (dist < radius) & open_ground
    sy, sx = (shadow_per_m[::-1] * rng.uniform(0.8, 2.0) / g).astype(int)
    shadow = np.roll(bush, (sy, sx), axis=(0, 1)) & ~bush & open_ground
    img[:, shadow] *= rng.uniform(0.4, 0.6)
    tone = world._color("dark_tree" if rng.random() < 0.5 else "dry_grass", rng) * rng.uniform(0.5, 0.9)
    tex = 1 + 0.3 * rng.standard_normal(int(bush.sum())).astype(np.float32)
    img[:, bush] = tone[:, None] * tex[None]


def terrace_units(img, rows, cols, roof, g, rng):
    """Row houses under one long roof: each unit a slightly different tone, party walls as thin dark
    lines across the ridge, and a chimney or dormer here and there (European towns, 5-8 m units)."""
    rect = np.asarray(roof.minimum_rotated_rectangle.exterior.coords)
    sides = np.diff(rect[:3], axis=0)
    lengths = np.hypot(sides[:, 0], sides[:, 1])
    if lengths.max() * g < 18 or lengths.max() < 2.5 * max(lengths.min(), 1e-6):
        return
    axis = sides[np.argmax(lengths)] / lengths.max()
    t = (cols + 0.5 - rect[0, 0]) * axis[0] + (rows + 0.5 - rect[0, 1]) * axis[1]
    unit_px = rng.uniform(5, 8) / g
    unit = np.floor((t - t.min()) / unit_px).astype(int)
    tone = rng.uniform(0.85, 1.15, unit.max() + 1).astype(np.float32)
    wall = ((t - t.min()) % unit_px) < max(1.0, 0.35 / g)
    factor = tone[unit] * np.where(wall, rng.uniform(0.55, 0.75), 1.0)
    chimney = ((t - t.min()) % unit_px > unit_px * 0.45) & ((t - t.min()) % unit_px < unit_px * 0.45 + 0.8 / g)
    across = (cols + 0.5) * -axis[1] + (rows + 0.5) * axis[0]
    chimney &= np.abs(across - np.median(across)) < 0.5 / g
    chimney &= rng.random(unit.max() + 1)[unit] < 0.5
    factor = np.where(chimney, 0.4, factor)
    img[:, rows, cols] *= factor[None]
