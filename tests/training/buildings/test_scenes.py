"""The synthetic scene renderer and `tessera synth-scene`."""
import subprocess
import sys

import numpy as np
import pytest

from tessera.training.buildings.scenes import GSD_M, Building, rasterize_buildings, render_scene


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(s, 256) for s in (11, 12, 13)]


def test_same_seed_same_scene_different_seed_different(scenes):
    again = render_scene(11, 256)
    assert np.array_equal(again.image, scenes[0].image)
    assert np.array_equal(again.instances, scenes[0].instances)
    assert not np.array_equal(scenes[0].image, scenes[1].image)
    assert scenes[0].image.shape == (256, 256, 3) and scenes[0].image.dtype == np.uint8


def test_footprints_agree_with_instance_map(scenes):
    for sc in scenes:
        assert len(sc.buildings) > 5
        areas = np.bincount(sc.instances.ravel(), minlength=len(sc.buildings) + 1)[1:]
        for poly, n_px in zip(sc.polygons(), areas):
            assert poly.is_valid
            assert abs(poly.area - n_px) <= 0.1 * poly.area + 4  # pixel-centre rasterization
        # no overlaps: every building keeps its own pixels
        assert (areas > 0).all()


def test_scene_has_the_hard_cases():
    import shapely

    buildings, gaps = [], []
    for seed in range(20, 26):
        sc = render_scene(seed, 512)
        buildings += sc.buildings
        polys = sc.polygons()
        tree = shapely.STRtree(polys)
        for i, p in enumerate(polys):
            for j in tree.query(p.buffer(4.0)):
                if j > i:
                    gaps.append(p.distance(polys[j]))
    sizes_m = [max(b.length, b.width) * GSD_M for b in buildings]
    assert min(sizes_m) <= 6 and max(sizes_m) >= 30  # ~4 m sheds to ~40 m halls
    assert any(b.notch is not None for b in buildings)  # L-shapes
    angles = np.mod([b.angle for b in buildings], np.pi / 2)
    assert np.ptp(angles) > 1.0  # any rotation, not axis-aligned only
    gaps_m = np.asarray(gaps) * GSD_M
    assert ((gaps_m >= 0.9) & (gaps_m <= 2.1)).sum() >= 10  # dense clusters with 1-2 m gaps


def test_rasterize_l_shape_literal():
    b = Building(cx=10, cy=10, length=8, width=8, angle=0.0, notch=(4, 4))
    inst = rasterize_buildings([b], (20, 20))
    assert inst.sum() == 64 - 16
    assert inst[13, 13] == 0 and inst[7, 7] == 1  # (+u, +v) corner is the notch


def test_renderer_imports_no_geo_stack():
    code = ("import sys; import tessera.training.buildings.scenes as s; s.render_scene(1, 64); "
            "print(sorted(m for m in ('rasterio', 'shapely', 'geopandas', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_writes_georeferenced_scene(tmp_path):
    import geopandas as gpd
    import rasterio

    from tessera.pipelines import synth_scene

    assert synth_scene.main(["--output", str(tmp_path), "--seed", "3", "--size", "128",
                             "--center=-1.29,36.82"]) == 0
    with rasterio.open(tmp_path / "scene.tif") as src:
        assert src.crs.to_epsg() == 32737  # Nairobi: UTM 37S
        assert src.res == (0.5, 0.5) and src.count == 3 and src.dtypes[0] == "uint8"
        assert (src.width, src.height) == (128, 128)
        bounds = src.bounds
    labels = gpd.read_file(tmp_path / "buildings.geojson")
    assert labels.crs.to_epsg() == 4326
    expected = render_scene(3, 128)
    assert len(labels) == len(expected.buildings)
    utm = labels.to_crs(32737)
    # footprints land inside the image and keep their area (pixel area * 0.25 m^2)
    assert utm.total_bounds[0] >= bounds.left and utm.total_bounds[2] <= bounds.right
    px_area = np.array([p.area for p in expected.polygons()]) * 0.25
    np.testing.assert_allclose(utm.area.to_numpy(), px_area, rtol=1e-3)
    np.testing.assert_allclose(labels["area_in_meters"], px_area, rtol=1e-6)
