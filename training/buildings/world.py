"""Synthetic satellite scenes that look like the world, built on real building layouts (numpy/scipy).

The first generator (`scenes.py`) drew coloured rectangles, and a model trained on it found 2 of 43
buildings on a real 0.5 m tile while "finding" trees and lawns. These scenes take real footprints
(`layouts.py`) and render what a pan or RGB sensor sees: a biome (green suburb, arid suburb,
European town, industrial) choosing ground covers, streets along the open space between buildings,
driveways, pools and cars; pitched (gable, hip) and flat roofs shaded by the sun's direction; walls
and roofs displaced from the footprint by off-nadir lean; cast shadows from building and tree
heights; tree canopy that hides parts of roofs; haze, blur and noise; 8-bit RGB or 11-bit pan
radiometry, rendered at 0.3-0.6 m and resampled to the model's 0.5 m as `tessera buildings` does.
Labels are the footprints, as in SpaceNet. Everything is a function of the seed and the layouts.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from tessera.training.buildings.layouts import Layout, sample_layout
from tessera.training.buildings.scenes import _noise

OUT_GSD_M = 0.5
PAN_WEIGHTS = np.array([0.28, 0.30, 0.14, 0.28], np.float32)  # R, G, B, NIR: WorldView-like 450-800 nm
# reflectance (R, G, B, NIR) of surfaces
SURFACES = {
    "grass": (0.06, 0.10, 0.05, 0.42), "dry_grass": (0.17, 0.16, 0.11, 0.30),
    "soil": (0.30, 0.26, 0.20, 0.34), "gravel": (0.24, 0.23, 0.21, 0.26),
    "asphalt": (0.08, 0.08, 0.08, 0.09), "old_asphalt": (0.14, 0.14, 0.13, 0.15),
    "concrete": (0.30, 0.30, 0.28, 0.32), "water": (0.05, 0.22, 0.26, 0.03),
    "tree": (0.04, 0.07, 0.04, 0.36), "dark_tree": (0.03, 0.05, 0.03, 0.28),
}
ROOFS = {  # reflectance and relative frequency per biome (green, arid, town, industrial)
    "dark_shingle": ((0.07, 0.07, 0.08, 0.09), (5, 1, 2, 0)),
    "grey_shingle": ((0.15, 0.15, 0.16, 0.17), (4, 2, 2, 1)),
    "brown_shingle": ((0.17, 0.12, 0.09, 0.18), (2, 1, 1, 0)),
    "terracotta": ((0.30, 0.14, 0.09, 0.30), (1, 4, 4, 0)),
    "white": ((0.55, 0.55, 0.53, 0.55), (1, 3, 1, 3)),
    "metal": ((0.33, 0.34, 0.35, 0.34), (1, 1, 1, 4)),
    "tar": ((0.12, 0.12, 0.12, 0.13), (0, 1, 2, 3)),
    "green_roof": ((0.10, 0.16, 0.10, 0.30), (0, 0, 1, 0)),
}
BIOMES = ("green", "arid", "town", "industrial")


def _color(name, rng, jitter=0.12) -> np.ndarray:
    base = np.asarray(SURFACES[name] if name in SURFACES else ROOFS[name][0], np.float32)
    return base * rng.uniform(1 - jitter, 1 + jitter) * rng.uniform(0.95, 1.05, 4).astype(np.float32)


def _fill(geoms_px, shape) -> np.ndarray:
    """Geometries in render pixels -> bool mask (anti-aliasing is left to the resampling); parts
    that are not polygons, and empty ones, draw nothing."""
    import cv2
    mask = np.zeros(shape, np.uint8)
    polys = [p for g in geoms_px if g is not None and not g.is_empty
             for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon" and not p.is_empty]
    pts = [np.round(np.asarray(p.exterior.coords)[:, :2] * 4).astype(np.int32) for p in polys]
    pts = [q for q in pts if len(q) >= 3]
    if pts:
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=2)
    return mask.astype(bool)


def _ground(rng, biome, shape) -> np.ndarray:
    covers = {"green": ("grass", "dry_grass", "soil"), "arid": ("soil", "gravel", "dry_grass"),
              "town": ("grass", "concrete", "dry_grass"), "industrial": ("gravel", "concrete", "soil")}[biome]
    img = np.empty((4,) + shape, np.float32)
    img[:] = _color(covers[0], rng)[:, None, None]
    for name, share in zip(covers[1:], (0.3, 0.15)):
        patch = _noise(rng, shape, sigmas=(8.0, 30.0), weights=(0.4, 0.6)) > np.quantile(
            rng.standard_normal(1000), 1 - share)
        img[:, patch] = _color(name, rng)[:, None]
    amp = rng.uniform(0.04, 0.15)
    texture = 1 + amp * _noise(rng, shape, sigmas=(0.7, 2.0, 6.0, 25.0), weights=(0.35, 0.3, 0.2, 0.3))
    return img * np.clip(texture, 0.3, None)[None]


def _streets(rng, built, g) -> np.ndarray:
    """Streets along the middle of the open space between buildings: the ridges of the distance map
    (where its gradient vanishes), kept where they run for 25 m or more, widened to 5-9 m."""
    dist = ndimage.distance_transform_edt(~built)
    gy, gx = np.gradient(ndimage.gaussian_filter(dist, 1.0))
    ridge = (np.hypot(gx, gy) < 0.45) & (dist * g > rng.uniform(6, 9)) & (dist * g < 40)
    labels, count = ndimage.label(ridge, structure=np.ones((3, 3)))
    if count:
        sizes = ndimage.sum_labels(ridge, labels, index=np.arange(1, count + 1))
        ridge = np.isin(labels, 1 + np.nonzero(sizes * g >= 25)[0])
    return ndimage.binary_dilation(ridge, iterations=max(1, int(rng.uniform(2.5, 4.5) / g)))


def _sun(rng):
    elevation = math.radians(rng.uniform(25, 70))
    azimuth = math.radians(rng.normal(150, 40) if rng.random() < 0.8 else rng.uniform(0, 360))
    s = np.array([math.cos(elevation) * math.sin(azimuth), -math.cos(elevation) * math.cos(azimuth),
                  math.sin(elevation)], np.float32)  # x east, y south (down), z up
    shadow_per_m = -s[:2] / max(math.tan(elevation), 0.2)  # ground offset of a shadow per metre of height
    return s, shadow_per_m


def _sweep(poly, dx, dy, steps=6):
    """The area a polygon covers when moved from (0, 0) to (dx, dy): its shadow, or its walls."""
    import shapely
    from shapely import affinity
    parts = [affinity.translate(poly, dx * t, dy * t) for t in np.linspace(0, 1, steps)]
    hulls = [shapely.MultiPolygon([a, b]).convex_hull for a, b in zip(parts, parts[1:])]
    return shapely.unary_union(hulls + [poly])


def _roof_shade(poly, rows, cols, kind, pitch, sun) -> np.ndarray:
    """Per-pixel irradiance factor of a roof: each pixel lies on the facet of its nearest eave edge
    (a hip roof over any footprint); gable roofs use only the edges along the long axis."""
    if kind == "flat":
        return np.ones(rows.shape, np.float32)
    xy = np.asarray(poly.exterior.coords)[:, :2]
    a, b = xy[:-1], xy[1:]
    d = b - a
    length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
    normal = np.stack([d[:, 1], -d[:, 0]], 1) / length[:, None]
    mid, cen = (a + b) / 2, np.array(poly.centroid.coords[0])
    normal *= np.where(((mid - cen) * normal).sum(1) < 0, -1.0, 1.0)[:, None]  # point outward
    keep = np.ones(len(d), bool)
    if kind == "gable":
        rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)
        sides = np.diff(rect[:3], axis=0)
        axis = sides[np.argmax(np.hypot(sides[:, 0], sides[:, 1]))]
        axis = axis / max(np.hypot(*axis), 1e-6)
        keep = np.abs((d / length[:, None]) @ axis) > 0.7
        if not keep.any():
            keep[:] = True
    p = np.stack([cols + 0.5, rows + 0.5], -1)[..., None, :]  # [..., 1, 2]
    t = np.clip(((p - a) * d).sum(-1) / length**2, 0, 1)
    dist = np.hypot(*np.moveaxis(p - (a + t[..., None] * d), -1, 0))
    dist = np.where(keep, dist, np.inf)
    facet = normal[np.argmin(dist, axis=-1)]
    n = np.concatenate([facet * math.sin(pitch), np.full(facet.shape[:-1] + (1,), math.cos(pitch))], -1)
    irradiance = 0.25 + 0.75 * np.clip(n @ sun, 0, None)
    return (irradiance / (0.25 + 0.75 * sun[2])).astype(np.float32)


def _paint(img, mask, color, texture_amp, rng):
    if mask.any():
        tex = 1 + texture_amp * rng.standard_normal(int(mask.sum())).astype(np.float32)
        img[:, mask] = color[:, None] * tex[None]


def render_world(seed: int, layouts: list[Layout], size: int = 512, *, pan: bool | None = None):
    """Render one scene on a real layout.

    Returns:
      (raw [bands, size, size]: uint16 11-bit pan (1 band) or uint8 RGB (3 bands),
       instances [size, size] int32 (0 background, i+1 building i), footprints in metres).
    """
    import shapely
    from shapely import affinity

    rng = np.random.default_rng([int(seed), 0x3041D])
    biome = BIOMES[rng.choice(4, p=[0.45, 0.2, 0.25, 0.1])]
    g = float(rng.uniform(0.3, 0.6))  # rendered pixel size, resampled to 0.5 m at the end
    size_m = size * OUT_GSD_M
    n = int(round(size_m / g))
    shape = (n, n)
    weights = np.array([len(l.polygons) for l in layouts], np.float64)
    footprints = sample_layout([layouts[rng.choice(len(layouts), p=weights / weights.sum())]], rng, size_m)
    px = [affinity.scale(p, 1 / g, 1 / g, origin=(0, 0)) for p in footprints]
    img = _ground(rng, biome, shape)
    built = _fill(px, shape)
    streets = _streets(rng, built, g) & ~ndimage.binary_dilation(built, iterations=max(1, int(2 / g)))
    _paint(img, streets, _color("asphalt" if rng.random() < 0.7 else "old_asphalt", rng), 0.04, rng)
    sun, shadow_per_m = _sun(rng)
    road_dist, road_idx = ndimage.distance_transform_edt(~streets, return_indices=True)

    extras = []  # (mask, surface) drawn before shadows: driveways, pools, cars
    for poly in px:
        c = np.array(poly.centroid.coords[0])
        r, q = int(np.clip(c[1], 0, n - 1)), int(np.clip(c[0], 0, n - 1))
        if streets.any() and biome in ("green", "arid") and rng.random() < 0.6 and road_dist[r, q] * g < 45:
            target = np.array([road_idx[1][r, q], road_idx[0][r, q]], np.float64)
            width = rng.uniform(3, 5) / g
            drive = shapely.LineString([c, target]).buffer(width / 2, cap_style=2).difference(poly)
            extras.append((_fill([p for p in getattr(drive, "geoms", [drive]) if p.geom_type == "Polygon"], shape),
                           "concrete"))
            if rng.random() < 0.5:
                away = (c - target) / max(np.linalg.norm(c - target), 1e-6)
                car = affinity.rotate(shapely.box(-2.2 / g, -0.9 / g, 2.2 / g, 0.9 / g),
                                      math.degrees(math.atan2(away[1], away[0])), origin=(0, 0))
                spot = target + away * rng.uniform(0.3, 0.8) * np.linalg.norm(c - target)
                extras.append((_fill([affinity.translate(car, *spot)], shape), "car"))
        if biome in ("arid", "green") and rng.random() < (0.3 if biome == "arid" else 0.08):
            pool = affinity.rotate(shapely.box(-4 / g, -2 / g, 4 / g, 2 / g).buffer(0.8 / g),
                                   rng.uniform(0, 180), origin=(0, 0))
            spot = c + rng.normal(0, 1, 2) / g * rng.uniform(10, 16) / 1.4
            pool = affinity.translate(pool, *spot)
            if not pool.buffer(1 / g).intersects(shapely.unary_union(px)):
                extras.append((_fill([pool.buffer(0.7 / g)], shape), "concrete"))
                extras.append((_fill([pool], shape), "water"))
    for mask, surface in extras:
        if surface == "car":
            tone = rng.choice([0.06, 0.12, 0.35, 0.5, 0.6])
            _paint(img, mask, np.array([tone, tone, tone * 1.05, tone], np.float32), 0.05, rng)
        else:
            _paint(img, mask & ~built, _color(surface, rng), 0.05, rng)

    _slabs(img, rng, built, streets, g)
    heights = [rng.uniform(3.5, 7.5) * (1.8 if p.area * g * g > 600 else 1.0) for p in px]
    shadows = np.zeros(shape, bool)
    for poly, h in zip(px, heights):
        dx, dy = shadow_per_m * h / g
        shadows |= _fill([_sweep(poly, dx, dy)], shape)
    img[:, shadows] *= rng.uniform(0.28, 0.45)

    roof_p = np.array([w[BIOMES.index(biome)] for _, w in ROOFS.values()], np.float64)
    lean = rng.uniform(0, 0.2) * np.array([math.cos(a := rng.uniform(0, 2 * math.pi)), math.sin(a)])
    for poly, h in zip(px, heights):
        area_m2 = poly.area * g * g
        flat_p = 0.85 if area_m2 > 600 or biome == "industrial" else (0.4 if biome == "town" else 0.15)
        kind = "flat" if rng.random() < flat_p else ("hip" if rng.random() < 0.45 else "gable")
        material = list(ROOFS)[rng.choice(len(ROOFS), p=roof_p / roof_p.sum())]
        roof = affinity.translate(poly, *(lean * h / g))
        if lean.any():  # walls between footprint and the displaced roof
            walls = _fill([_sweep(poly, *(lean * h / g))], shape)
            _paint(img, walls, _color("concrete", rng) * rng.uniform(0.3, 0.8), 0.05, rng)
        mask = _fill([roof], shape)
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            continue
        shade = _roof_shade(roof, rows, cols, kind, math.radians(rng.uniform(18, 40)), sun)
        color = _color(material, rng)
        tex = 1 + 0.05 * rng.standard_normal(rows.size).astype(np.float32)
        img[:, rows, cols] = color[:, None] * (shade * tex)[None]
        if kind == "flat":
            rim = mask & ~ndimage.binary_erosion(mask, iterations=max(1, int(0.6 / g)))
            img[:, rim] *= rng.choice([0.75, 1.25])

    open_ground = ~(ndimage.binary_dilation(built, iterations=max(1, int(1.5 / g))) | streets | shadows)
    if biome in ("arid", "green") or rng.random() < 0.3:
        _shrubs(img, rng, open_ground, sun, shadow_per_m, g)
    density = {"green": rng.uniform(0.15, 0.55), "arid": rng.uniform(0.0, 0.12),
               "town": rng.uniform(0.05, 0.3), "industrial": rng.uniform(0.0, 0.1)}[biome]
    _trees(img, rng, density, built, streets, sun, shadow_per_m, g)

    haze = rng.uniform(0, 0.06) * (1 + 0.3 * _noise(rng, shape, sigmas=(60.0,), weights=(1.0,)))
    img = img + haze[None]
    img = _blur(img, rng.uniform(0.35, 0.9) * OUT_GSD_M / g)
    out = ndimage.zoom(img, (1, size / n, size / n), order=1)[:, :size, :size]
    raw = _sensor(rng, out, pan=(rng.random() < 0.5) if pan is None else pan)
    from tessera.training.buildings.data import rasterize_instances
    from rasterio.transform import Affine
    instances = rasterize_instances(footprints, Affine(OUT_GSD_M, 0, 0, 0, OUT_GSD_M, 0), (size, size))
    return raw, instances, footprints


def _slabs(img, rng, built, streets, g):
    """Roof-like things that are not buildings: parking lots with rows of cars, courts, concrete
    yards and bare sand patches; flat and shadowless, so only the missing height tells them apart."""
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
        mask = _fill([slab], (n, n)) & far
        surface = rng.choice(["asphalt", "old_asphalt", "concrete", "soil", "gravel"])
        _paint(img, mask, _color(surface, rng), 0.06, rng)
        if surface in ("asphalt", "old_asphalt") and rng.random() < 0.7:  # cars parked in rows
            for t in np.arange(-w / 2 + 2 / g, w / 2 - 1 / g, 2.7 / g):
                if rng.random() < 0.4:
                    continue
                car = affinity.translate(shapely.box(t - 0.9 / g, -2.2 / g, t + 0.9 / g, 2.2 / g),
                                         0, rng.choice([-1, 1]) * (h / 2 - 2.8 / g))
                car = affinity.translate(affinity.rotate(car, angle, origin=(0, 0)), c, r)
                tone = rng.choice([0.05, 0.12, 0.35, 0.55, 0.65])
                _paint(img, _fill([car], (n, n)) & mask, np.array([tone] * 4, np.float32), 0.05, rng)


def _blur(img, sigma_px):
    return np.stack([ndimage.gaussian_filter(b, sigma_px) for b in img])


def _trees(img, rng, density, built, streets, sun, shadow_per_m, g):
    """Crowns in clumps, as a pan sensor sees them: lobed crowns lit on the sun side and dark on the
    other, leaf texture with dark gaps, cast shadows on the ground, on roofs and on lower crowns.
    (Flat bright disks taught the model that dark textured masses next to them are roofs.)"""
    n = img.shape[1]
    field = _noise(rng, (n, n), sigmas=(20.0, 60.0), weights=(0.6, 0.4))
    count = int(density * (n * g) ** 2 / 25)
    if count == 0:
        return
    cand = rng.integers(0, n, (count * 4, 2))
    keep = field[cand[:, 0], cand[:, 1]] > np.quantile(field, 1 - min(0.9, density * 1.6))
    keep &= ~streets[cand[:, 0], cand[:, 1]]
    overhang = rng.uniform(0.0, 0.35)  # share of crowns allowed over roofs
    keep &= ~built[cand[:, 0], cand[:, 1]] | (rng.random(len(cand)) < overhang)
    crowns = cand[keep][:count]
    radii = rng.uniform(1.5, 5.5, len(crowns)) / g
    heights = rng.uniform(5, 20, len(crowns))
    ambient = rng.uniform(0.12, 0.3)
    yy, xx = np.mgrid[0:n, 0:n]
    canopy = np.zeros((n, n), np.float32)
    shade = np.zeros((n, n), np.float32)
    cast = np.zeros((n, n), bool)
    for (r, c), rad, h in zip(crowns, radii, heights):
        lobes = [(r, c, rad)] + [(r + rad * 0.6 * math.sin(a), c + rad * 0.6 * math.cos(a), rad * rng.uniform(0.4, 0.7))
                                 for a in rng.uniform(0, 2 * math.pi, rng.integers(0, 5))]
        for lr, lc, lrad in lobes:
            r0, r1 = max(0, int(lr - lrad) - 1), min(n, int(lr + lrad) + 2)
            c0, c1 = max(0, int(lc - lrad) - 1), min(n, int(lc + lrad) + 2)
            if r1 <= r0 or c1 <= c0:
                continue
            dy, dx = (yy[r0:r1, c0:c1] - lr) / lrad, (xx[r0:r1, c0:c1] - lc) / lrad
            inside = dx**2 + dy**2 < 1
            z = np.sqrt(np.clip(1 - dx**2 - dy**2, 0, 1))
            lit = ambient + (1 - ambient) * np.clip(dx * sun[0] + dy * sun[1] + z * sun[2], 0, 1) ** 1.5
            canopy[r0:r1, c0:c1] = np.maximum(canopy[r0:r1, c0:c1], inside.astype(np.float32))
            shade[r0:r1, c0:c1] = np.where(inside, lit, shade[r0:r1, c0:c1])
            sy, sx = (shadow_per_m[::-1] * h / g).astype(int)
            rs = slice(max(0, r0 + sy), max(0, min(n, r1 + sy)))
            cs = slice(max(0, c0 + sx), max(0, min(n, c1 + sx)))
            if rs.stop > rs.start and cs.stop > cs.start:
                orr, occ = rs.start - (r0 + sy), cs.start - (c0 + sx)
                part = inside[orr:orr + rs.stop - rs.start, occ:occ + cs.stop - cs.start]
                if part.shape == cast[rs, cs].shape:
                    cast[rs, cs] |= part
    ground_shadow = rng.uniform(0.3, 0.55)
    img[:, cast & (canopy == 0)] *= ground_shadow
    leaves = 1 + rng.uniform(0.25, 0.45) * _noise(rng, (n, n), sigmas=(0.6 / g * 0.5, 1.2, 3.0), weights=(0.5, 0.35, 0.15))
    gaps = _noise(rng, (n, n), sigmas=(1.0,), weights=(1.0,)) < -rng.uniform(1.0, 1.8)  # dark holes
    tree = _color("tree" if rng.random() < 0.6 else "dark_tree", rng) * rng.uniform(0.7, 1.1)
    mask = canopy > 0
    edge = ndimage.distance_transform_edt(mask) * g < 0.6
    value = shade * np.clip(leaves, 0.2, None) * np.where(gaps | edge, 0.45, 1.0)
    value = np.where(cast, value * rng.uniform(0.55, 0.8), value)  # crowns in other crowns' shadow
    img[:, mask] = tree[:, None] * value[mask][None]


def _shrubs(img, rng, open_ground, sun, shadow_per_m, g):
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
    tone = _color("dark_tree" if rng.random() < 0.5 else "dry_grass", rng) * rng.uniform(0.5, 0.9)
    tex = 1 + 0.3 * rng.standard_normal(int(bush.sum())).astype(np.float32)
    img[:, bush] = tone[:, None] * tex[None]


def _sensor(rng, refl, pan: bool) -> np.ndarray:
    """Reflectance -> 11-bit pan (uint16) or 8-bit RGB (uint8) with gain, offset, tone and noise."""
    if pan:
        value = np.tensordot(PAN_WEIGHTS, refl, axes=1)[None]
        dn = value * rng.uniform(1800, 3200) + rng.uniform(40, 160)
        dn += rng.normal(0, rng.uniform(2, 9), dn.shape) + np.sqrt(np.clip(dn, 0, None)) * rng.normal(0, 0.3, dn.shape)
        return np.clip(np.round(dn), 1, 2047).astype(np.uint16)
    rgb = np.clip(refl[:3] * rng.uniform(2.2, 3.6), 0, 1) ** rng.uniform(0.55, 0.9)
    rgb = rgb * 255 + rng.normal(0, rng.uniform(1.0, 3.5), rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def world_tile(seed: int, size: int = 512, w0: float = 10.0, sigma: float = 5.0, labelled: bool = True,
               layouts_dir: str | None = None):
    """A training tile from `render_world`, normalized exactly as inference normalizes a GeoTIFF
    (a module-level function: pool-friendly; layouts are loaded once per process)."""
    from tessera.training.buildings import data as bt
    from tessera.transforms.buildings.normalize import normalize_raster, to_uint8

    raw, instances, _ = render_world(seed, _layouts(layouts_dir), size)
    image = to_uint8(normalize_raster(raw))
    return bt.make_tile(image, instances if labelled else None, w0=w0, sigma=sigma, key=f"world:{seed}")


_LAYOUTS: dict = {}


def _layouts(directory: str | None) -> list[Layout]:
    from tessera.training.buildings.layouts import DEFAULT_DIR, load_layouts
    directory = directory or DEFAULT_DIR
    if directory not in _LAYOUTS:
        _LAYOUTS[directory] = load_layouts(directory)
        if not _LAYOUTS[directory]:
            raise FileNotFoundError(f"no real layouts under {directory}: run `make real-data` first")
    return _LAYOUTS[directory]
