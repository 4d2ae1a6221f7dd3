"""End to end: build(TestPipeline(), config) on tiny GeoTIFFs with the red-band stand-in model."""
from __future__ import annotations

import glob
import json
import os

import geopandas as gpd
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from tessera.pipelines.buildings import BuildingsConfig, build
from tests.fixtures.buildings import RED_BAND, RES, rgb_scene, write_tif

# tile 48, overlap 16: stride 32, so core borders sit at multiples of 32 px from the file origin.
TILE, OVERLAP = 48, 16


def _run(tmp_path, pattern, **kw):
    out = str(tmp_path / "out")
    model = tmp_path / "red_band.model"  # the manifest records the model file's checksum
    model.write_bytes(b"stand-in: probability = red band")
    config = BuildingsConfig(input=pattern, output=out, model=f"{RED_BAND.name}:{model}", tile_size=TILE,
                             overlap=OVERLAP, min_area_m2=1.0, simplify_px=0.0, **kw)
    with TestPipeline() as p:
        build(p, config)
    return out


def _read(out):
    return gpd.read_parquet(os.path.join(out, "buildings"))


def _dead_letters(out):
    rows = []
    for path in glob.glob(os.path.join(out, "errors", "*.jsonl")):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def _areas_m2(gdf):
    return sorted(round(a, 1) for a in gdf.to_crs(32633).area)


def test_building_across_window_border_comes_out_once_and_whole(tmp_path):
    # 20 x 12 px building across the core border at col 32 (and one well inside a core).
    img = rgb_scene(80, 80, [(10, 24, 22, 44), (50, 50, 56, 58)])
    write_tif(tmp_path / "a.tif", img)
    out = _run(tmp_path, str(tmp_path / "*.tif"))
    gdf = _read(out)
    assert len(gdf) == 2
    assert _areas_m2(gdf) == pytest.approx(sorted([6 * 8 * RES**2, 12 * 20 * RES**2]), rel=1e-3)
    assert os.path.exists(os.path.join(out, "COMPLETED"))
    assert _dead_letters(out) == []


def test_building_across_tile_border_comes_out_once_and_whole(tmp_path):
    # Two adjacent files (64 px wide each); a 16 x 10 px building spans cols 56..72 of the mosaic,
    # i.e. it is cut in two by the file border and by no core border (cores at 32, 64 -> 64 is one!).
    left = rgb_scene(64, 64, [(20, 56, 30, 64)])
    right = rgb_scene(64, 64, [(20, 0, 30, 8), (40, 20, 46, 30)])
    write_tif(tmp_path / "left.tif", left)
    write_tif(tmp_path / "right.tif", right, col0=64)
    out = _run(tmp_path, str(tmp_path / "*.tif"))
    gdf = _read(out)
    assert len(gdf) == 2
    assert _areas_m2(gdf) == pytest.approx(sorted([10 * 16 * RES**2, 6 * 10 * RES**2]), rel=1e-3)
    # The straddling building's polygon is one piece spanning both files.
    big = gdf.to_crs(32633).geometry[gdf.to_crs(32633).area.idxmax()]
    assert big.geom_type == "Polygon" and big.bounds[2] - big.bounds[0] == pytest.approx(16 * RES)


def test_bad_tiles_go_to_dead_letters_while_others_finish(tmp_path):
    write_tif(tmp_path / "good.tif", rgb_scene(64, 64, [(10, 10, 20, 20)]))
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + os.urandom(600))
    write_tif(tmp_path / "nogeo.tif", rgb_scene(32, 32, [(4, 4, 10, 10)]), crs=False)
    write_tif(tmp_path / "empty.tif", np.zeros((3, 32, 32), np.uint8), col0=640, nodata=0)
    pan = np.full((64, 64), 1000, np.uint16)  # 16-bit panchromatic: stretched per band, then repeated
    pan[30:38, 40:52] = 3000
    write_tif(tmp_path / "pan16.tif", pan, col0=320)
    out = _run(tmp_path, str(tmp_path / "*.tif"))
    gdf = _read(out)
    assert _areas_m2(gdf) == [pytest.approx(8 * 12 * RES**2), pytest.approx(10 * 10 * RES**2)]
    reasons = {os.path.basename(d["key"]): d["reason"] for d in _dead_letters(out)}
    assert reasons == {"corrupt.tif": "corrupt_file", "nogeo.tif": "no_georeference", "empty.tif": "all_nodata"}
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["counts"]["dead_letters"] == 3 and manifest["counts"]["buildings"] == 2


def test_csv_format(tmp_path):
    write_tif(tmp_path / "a.tif", rgb_scene(64, 64, [(10, 10, 20, 24)]))
    out = _run(tmp_path, str(tmp_path / "*.tif"), format="csv")
    files = glob.glob(os.path.join(out, "buildings", "*_buildings.csv.gz"))
    assert len(files) == 1
    import pandas as pd
    df = pd.read_csv(files[0])
    assert list(df.columns) == ["latitude", "longitude", "area_in_meters", "confidence", "geometry",
                                "full_plus_code"]
    assert len(df) == 1 and df.geometry[0].startswith("POLYGON ((")
    assert df.area_in_meters[0] == pytest.approx(10 * 14 * RES**2, rel=0.01)


def test_unreadable_pixels_become_read_error_dead_letters(tmp_path):
    # The header is sound (the file is inspected and planned); the deflate payload is not.
    write_tif(tmp_path / "good.tif", rgb_scene(64, 64, [(10, 10, 20, 20)]))
    noise = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    broken = tmp_path / "broken.tif"
    write_tif(broken, noise, col0=640, compress="deflate")
    data = bytearray(broken.read_bytes())
    data[2000:-200] = b"\xab" * (len(data) - 2200)
    broken.write_bytes(bytes(data))
    out = _run(tmp_path, str(tmp_path / "*.tif"))
    assert len(_read(out)) == 1
    letters = _dead_letters(out)
    assert letters and {d["reason"] for d in letters} == {"read_error"}
    assert all(d["key"].startswith(str(broken) + "#") and d["stage"] == "read" for d in letters)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["counts"]["dead_letters"] == len(letters)


def test_lat_lon_and_multispectral_rasters_are_warped_and_their_bands_picked(tmp_path):
    """An EPSG:4326 4-band (blue, green, red, NIR) raster at ~0.3 m: --bands 3,2,1 puts red first,
    the warp to local UTM at 0.5 m keeps the building where it is and its area in square metres."""
    import rasterio
    from rasterio.transform import from_origin

    deg = 2.7e-6  # ~0.3 m of latitude; ~0.24 m of longitude at 36 N
    data = np.zeros((4, 200, 200), np.uint8)
    data[1], data[3] = 40, 200  # green ground, bright NIR everywhere
    data[2, 92:108, 88:112] = 230  # red band: a 24 x 16 px building (~6 x 5 m)
    with rasterio.open(tmp_path / "ms.tif", "w", driver="GTiff", width=200, height=200, count=4,
                       dtype="uint8", crs="EPSG:4326", transform=from_origin(-115.2, 36.2, deg, deg)) as ds:
        ds.write(data)
    out = _run(tmp_path, str(tmp_path / "ms.tif"), bands="3,2,1")
    gdf = _read(out)
    assert len(gdf) == 1
    local = gdf.to_crs(gdf.estimate_utm_crs())
    width_m = 24 * deg * 111_320 * np.cos(np.radians(36.2 - 100 * deg))
    assert local.area.iloc[0] == pytest.approx(width_m * 16 * deg * 110_950, rel=0.2)
    assert gdf.geometry.iloc[0].centroid.x == pytest.approx(-115.2 + 100 * deg, abs=3 * deg)
    assert gdf.geometry.iloc[0].centroid.y == pytest.approx(36.2 - 100 * deg, abs=3 * deg)
    (tmp_path / "default").mkdir()
    unpicked = _run(tmp_path / "default", str(tmp_path / "ms.tif"))  # bands 1,2,3: blue first, no building
    assert json.load(open(os.path.join(unpicked, "manifest.json")))["counts"]["buildings"] == 0
