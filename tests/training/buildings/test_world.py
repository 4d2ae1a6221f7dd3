"""Real-layout scenes: footprints become labels exactly, radiometry is pan 11-bit or RGB 8-bit, the
same seed gives the same scene; layouts are cut and perturbed; appearance matching keeps labels."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import affinity

from tessera.training.buildings import appearance, layouts, world
from tessera.training.buildings.data import Tile


def _street_layout() -> list[layouts.Layout]:
    """Two rows of 12 x 10 m houses facing a street, 25 m lots (a suburb in metres, y down)."""
    houses = [shapely.box(x, y, x + 12, y + 10) for x in np.arange(5, 250, 25) for y in (60, 110)]
    return [layouts.Layout("test:street", 256.0, tuple(houses))]


def test_rendered_scenes_are_labelled_by_their_footprints():
    raw, instances, footprints = world.render_world(3, _street_layout(), 256, pan=True)
    assert raw.dtype == np.uint16 and raw.shape == (1, 256, 256) and raw.max() <= 2047
    assert instances.shape == (256, 256) and instances.max() == len(footprints) >= 6
    area_px = sum(p.area for p in footprints) / world.OUT_GSD_M ** 2
    assert abs((instances > 0).sum() / area_px - 1) < 0.1  # labels are the footprints, at 0.5 m
    again, _, _ = world.render_world(3, _street_layout(), 256, pan=True)
    assert np.array_equal(raw, again)  # a function of the seed
    rgb, _, _ = world.render_world(4, _street_layout(), 256, pan=False)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 256, 256) and rgb.std() > 5


def test_roofs_are_lit_by_the_sun():
    sun = np.array([0.0, 0.5, np.sqrt(0.75)], np.float32)  # sun in the south (y down), 60 deg up
    roof = shapely.box(0, 0, 20, 10)
    rows, cols = np.mgrid[0:10, 0:20]
    gable = world._roof_shade(roof, rows, cols, "gable", np.radians(30), sun)
    assert gable[8, 10] > 1.05 > 0.95 > gable[1, 10]  # the south facet is brighter, the north darker
    assert np.allclose(world._roof_shade(roof, rows, cols, "flat", 0.5, sun), 1.0)


def test_layouts_are_cut_into_chips_and_perturbed_without_leaving_the_window():
    big = [shapely.box(x, y, x + 10, y + 10) for x in range(0, 600, 30) for y in range(0, 300, 30)]
    chips = layouts._chips("area", big, 256.0)
    assert all(len(c.polygons) >= layouts.MIN_BUILDINGS and c.size_m == 256.0 for c in chips)
    assert sum(len(c.polygons) for c in chips) == len(big) - 2  # one corner chip held only two
    rng = np.random.default_rng(0)
    window = shapely.box(0, 0, 128, 128)
    sample = layouts.sample_layout(chips, rng, 128.0)
    assert sample and all(window.buffer(1e-6).contains(p) for p in sample)
    assert 80 < np.median([p.area for p in sample]) < 120  # jittered in place, not rescaled


def test_appearance_matching_moves_intensities_only():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 120, (64, 64, 3)).astype(np.uint8)
    mask = (rng.random((64, 64)) > 0.5).astype(np.uint8)
    reference = np.repeat(rng.integers(100, 250, (64, 64, 1)).astype(np.uint8), 3, axis=-1)
    matched = appearance.match_image(image, reference)
    assert appearance.is_panchromatic(matched)  # a pan reference makes the tile pan
    assert abs(np.median(matched) - np.median(reference)) < 10
    order = np.argsort(image.astype(np.float32) @ appearance.LUMA, axis=None)
    assert np.all(np.diff(matched[..., 0].ravel()[order].astype(int)) >= 0)  # monotone remapping
    tiles = [Tile(image=image, mask=mask, weights=None, key=f"t{i}") for i in range(20)]
    out = appearance.randomize_appearance(tiles, [Tile(image=reference)], p=0.5, seed=1)
    changed = [t for t in out if t.key.endswith("+matched")]
    assert 4 <= len(changed) <= 16 and all(t.mask is mask for t in out)


def test_world_tiles_need_real_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="make real-data"):
        world.world_tile(0, 64, layouts_dir=str(tmp_path))


def test_fourier_matching_takes_low_frequencies_from_the_reference_and_keeps_edges():
    rng = np.random.default_rng(0)
    image = np.full((64, 64, 3), 90, np.uint8)
    image[20:40, 20:44] = 170  # a roof: its edges must stay where they are
    ramp = np.linspace(40, 220, 64, dtype=np.float32)  # a haze gradient across the reference
    reference = np.repeat(np.clip(ramp[None, :, None] + rng.normal(0, 5, (64, 64, 1)), 0, 255), 3, -1).astype(np.uint8)
    out = appearance.match_fourier(image, reference, beta=0.05).astype(np.float32)
    assert abs(out.mean() - reference.mean()) < 3 and abs(image.mean() - reference.mean()) > 20  # tone came over
    low = np.abs(np.fft.fft2(out[..., 0]))[:3, :3]
    ref_low = np.abs(np.fft.fft2(reference[..., 0].astype(np.float32)))[:3, :3]
    assert np.abs(low - ref_low).max() < 0.01 * ref_low[0, 0]  # the low-frequency amplitudes are the reference's
    edges_in = np.abs(np.diff(image[..., 0].astype(np.float32), axis=1))
    edges_out = np.abs(np.diff(out[..., 0], axis=1))
    assert np.corrcoef(edges_in.ravel(), edges_out.ravel())[0, 1] > 0.9  # phases (edges) kept
    assert np.array_equal(appearance.match_fourier(image, image, 0.05), image)


def test_tree_crowns_are_dark_away_from_the_sun_and_shade_the_ground():
    from scipy import ndimage

    n, g = 240, 0.5
    sun, shadow_per_m = np.array([0.0, 0.6, 0.8], np.float32), np.array([0.0, -0.75], np.float32)  # sun south
    free = np.zeros((n, n), bool)
    img = np.full((4, n, n), 0.2, np.float32)
    world._trees(img, np.random.default_rng(0), 0.1, free, free, sun, shadow_per_m, g)
    crown = img[3] > 3 * img[0]  # leaves: NIR-bright, red-dark; the grey ground has ratio 1
    labels, count = ndimage.label(crown)
    ratios = []
    for i in range(1, count + 1):
        rows, cols = np.nonzero(labels == i)
        if rows.size > 40:
            south = rows > np.median(rows)
            ratios.append(img[3][rows[south], cols[south]].mean() / img[3][rows[~south], cols[~south]].mean())
    assert len(ratios) >= 3 and np.median(ratios) > 1.2  # lit on the sun side, dark on the other
    shadow = (img[3] < 0.2 - 1e-6) & ~crown
    assert (shadow & np.roll(crown, -10, axis=0)).sum() > 2 * (shadow & np.roll(crown, 10, axis=0)).sum()
