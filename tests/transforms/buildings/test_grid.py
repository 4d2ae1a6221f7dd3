"""Window planning on the shared grid, windowed reads, normalization and raster inspection."""
from __future__ import annotations

import collections
import os

import numpy as np
import pytest

from tessera.schemas.buildings import RasterInfo
from tests.fixtures.buildings import X0, Y0, rgb_scene, write_tif
from tessera.transforms.buildings import grid as buildings_grid
from tessera.transforms.buildings import raster as buildings_raster


def _info(width=80, height=80, col0=0, row0=0, path="a.tif", ranges=((0.0, 255.0),) * 3):
    return RasterInfo(path=path, crs_wkt="EPSG:32633", transform=(0.5, 0.0, X0 + col0 * 0.5, 0.0, -0.5, Y0 - row0 * 0.5),
                      width=width, height=height, band_count=3, dtype="uint8", nodata=None, band_ranges=ranges)


def _specs(infos, size=48, overlap=16):
    groups = collections.defaultdict(list)
    for info in infos:
        for key, value in buildings_grid.plan_windows(info, size, overlap):
            groups[key].append(value)
    specs = [buildings_grid.assemble_window(k, v, size, overlap) for k, v in groups.items()]
    return [s for s in specs if s is not None]


def _rel(spec, info):
    """Window index relative to the one whose core starts at the raster's pixel (0, 0)."""
    _, row0, col0 = buildings_grid.grid_of(info)
    return spec.row - row0 // spec.stride, spec.col - col0 // spec.stride


def test_window_cores_cover_every_pixel_exactly_once():
    infos = [_info(80, 70), _info(50, 70, col0=80, path="b.tif")]
    owners = np.zeros((70, 130), int)
    for spec in _specs(infos):
        _, row0, col0 = buildings_grid.grid_of(infos[0])
        r0, c0 = spec.core_row0 - row0, spec.core_col0 - col0
        owners[max(r0, 0):max(r0 + spec.stride, 0), max(c0, 0):max(c0 + spec.stride, 0)] += 1
    assert owners.min() == 1 and owners.max() == 1


def test_windows_at_a_file_border_list_both_files():
    specs = _specs([_info(64, 64), _info(64, 64, col0=64, path="b.tif")])
    shared = [s for s in specs if len(s.sources) == 2]
    # Grid indices are global (anchored at the CRS origin), so compare relative to the first file.
    # The cores at file cols 32..64 and 64..96 get context from both files.
    assert sorted({_rel(s, _info())[1] for s in shared}) == [1, 2]
    assert all(s.size == 48 and s.stride == 32 for s in specs)


def test_window_config_is_checked():
    with pytest.raises(ValueError):
        buildings_grid.check_window_config(50, 16)
    with pytest.raises(ValueError):
        buildings_grid.check_window_config(48, 15)


def test_normalize_rgb_16bit_and_panchromatic():
    rgb = np.array([[[0, 255]], [[51, 102]], [[255, 0]]], np.uint8)
    out = buildings_raster.normalize_bands(rgb, ((0, 255),) * 3)
    assert out.shape == (1, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 0.2, 1.0])
    pan = np.array([[[100, 300]]], np.uint16)
    out = buildings_raster.normalize_bands(pan, ((100.0, 300.0),))
    np.testing.assert_allclose(out[0], [[0, 0, 0], [1, 1, 1]])


def test_band_ranges_stretch_non_8bit_and_ignore_nodata():
    data = np.ma.masked_equal(np.array([[np.r_[0, np.arange(100, 1100, 10)]]], np.uint16), 0)
    (lo, hi), = buildings_raster.band_ranges("uint16", data)
    assert 100 < lo < 150 and 1000 < hi < 1090
    assert buildings_raster.band_ranges("uint8", None, 3) == ((0.0, 255.0),) * 3


def test_read_window_mosaics_files_and_keeps_nodata(tmp_path):
    left = rgb_scene(64, 64, [(20, 56, 30, 64)])
    right = rgb_scene(64, 64, [(20, 0, 30, 8)])
    right[:, 40:, :] = 0  # nodata block
    a = buildings_raster.inspect_raster(write_tif(tmp_path / "a.tif", left))
    b = buildings_raster.inspect_raster(write_tif(tmp_path / "b.tif", right, col0=64, nodata=0))
    spec = next(s for s in _specs([a, b]) if _rel(s, a) == (0, 2))  # mosaic cols 56..104
    image, valid, coverage, failures = buildings_raster.read_window(spec, buildings_raster.DatasetCache())
    assert failures == [] and coverage == {a.path: True, b.path: True}
    # The building spans window cols 0..16, 8 from each file; window rows start at mosaic row -8.
    red = image[..., 0] > 0.5
    assert red.sum() == 10 * 16
    assert not valid[:8].any() and valid[8:48].all()  # above the mosaic: nothing to read
    assert not valid[48:, 8:].any() and valid[48:, :8].all()  # right file's nodata block


def test_read_window_16bit_panchromatic(tmp_path):
    pan = np.full((1, 32, 32), 1000, np.uint16)
    pan[0, 8:16, 8:16] = 3000
    info = buildings_raster.inspect_raster(write_tif(tmp_path / "pan.tif", pan))
    assert info.band_count == 1 and info.dtype == "uint16"
    spec = next(s for s in _specs([info], 32, 0) if _rel(s, info) == (0, 0))
    image, valid, _, _ = buildings_raster.read_window(spec, buildings_raster.DatasetCache())
    assert valid.all()
    assert np.allclose(image[10, 10], 1.0) and np.allclose(image[0, 0], 0.0)
    assert np.array_equal(image[..., 0], image[..., 2])


def test_inspect_reasons(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    assert buildings_raster.inspect_raster(str(tmp_path / "bad.tif"))[0] == "corrupt_file"
    assert buildings_raster.inspect_raster(str(tmp_path / "missing.tif"))[0] == "corrupt_file"
    nogeo = write_tif(tmp_path / "nogeo.tif", rgb_scene(16, 16, []), crs=False)
    assert buildings_raster.inspect_raster(nogeo)[0] == "no_georeference"
    two = write_tif(tmp_path / "two.tif", np.zeros((2, 16, 16), np.uint8))
    assert buildings_raster.inspect_raster(two)[0] == "unsupported_bands"
    import rasterio
    from rasterio.transform import from_origin
    with rasterio.open(tmp_path / "ll.tif", "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(15.0, 36.0, 1e-5, 1e-5)) as ds:
        ds.write(np.zeros((3, 8, 8), np.uint8))
    warped = buildings_raster.inspect_raster(str(tmp_path / "ll.tif"))  # lat/lon: warped to UTM 33N
    assert warped.warped and "32633" in warped.crs_wkt.replace('"', "") and warped.transform[0] == 0.5
    ok = buildings_raster.inspect_raster(write_tif(tmp_path / "ok.tif", rgb_scene(16, 16, [])))
    assert isinstance(ok, RasterInfo) and os.path.basename(ok.path) == "ok.tif"


def test_window_key_packs_valid_mask():
    spec = _specs([_info()])[0]
    valid = np.ones((48, 48), bool)
    assert buildings_grid.pack_valid(valid) is None
    valid[3, 5] = False
    key = buildings_grid.WindowKey(spec, buildings_grid.pack_valid(valid))
    assert np.array_equal(key.valid(), valid) and str(key) == spec.key
