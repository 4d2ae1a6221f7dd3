"""Real inputs as they come: band choice, warping to local UTM at the model's pixel size, and one
normalization shared by inference (window reads) and training (whole-raster reads)."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from tessera.schemas.buildings import RasterInfo
from tessera.transforms.buildings import normalize
from tessera.transforms.buildings import raster


def _write(path, data, crs, transform, nodata=None):
    data = np.asarray(data)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs=crs, transform=transform,
                       nodata=nodata) as ds:
        ds.write(data)
    return str(path)


def _square_scene(h, w, dtype=np.uint16):
    """One band: dim ground, a bright 20% x 20% square in the middle."""
    data = np.full((1, h, w), 300, dtype)
    data[0, 2 * h // 5:3 * h // 5, 2 * w // 5:3 * w // 5] = 1500
    return data


def _bright_centroid(image, valid):
    rows, cols = np.nonzero((image[..., 0] > 0.8) & valid)
    return rows.mean() / image.shape[0], cols.mean() / image.shape[1]


@pytest.mark.parametrize("crs, transform, why", [
    ("EPSG:4326", from_origin(-115.2, 36.2, 4.5e-6, 4.5e-6), "geographic"),   # ~0.4 x 0.5 m
    ("EPSG:3857", from_origin(-12824000.0, 4330000.0, 0.6, 0.6), "Web Mercator"),
    ("EPSG:32611", from_origin(660000.0, 4008000.0, 1.0, 1.0), "1 m pixels"),
])
def test_rasters_as_they_come_are_warped_to_local_utm_at_half_a_metre(tmp_path, crs, transform, why, caplog):
    path = _write(tmp_path / "in.tif", _square_scene(200, 200), crs, transform)
    with caplog.at_level("INFO"):
        info = raster.inspect_raster(path)
    assert isinstance(info, RasterInfo) and info.warped and why in caplog.text
    assert "32611" in info.crs_wkt and info.transform[0] == 0.5 and info.transform[4] == -0.5
    assert info.transform[2] % 0.5 == 0 and info.transform[5] % 0.5 == 0  # snapped: one shared grid
    image, valid, read_info = raster.read_raster(path)
    assert read_info == info and image.shape == (info.height, info.width, 3)
    assert valid.mean() > 0.5
    cy, cx = _bright_centroid(image, valid)  # the square stays in the middle of the footprint
    assert abs(cy - 0.5) < 0.08 and abs(cx - 0.5) < 0.08


def test_utm_at_the_model_size_is_read_as_it_is_and_gsd_zero_never_resamples(tmp_path):
    ok = _write(tmp_path / "ok.tif", _square_scene(64, 64), "EPSG:32633", from_origin(500000, 4e6, 0.5, 0.5))
    coarse = _write(tmp_path / "c.tif", _square_scene(64, 64), "EPSG:32633", from_origin(500000, 4e6, 1.0, 1.0))
    assert not raster.inspect_raster(ok).warped
    assert raster.inspect_raster(coarse).warped and raster.inspect_raster(coarse).width == 128
    assert not raster.inspect_raster(coarse, gsd_m=0).warped


def test_bands_pick_and_order_channels(tmp_path):
    data = np.stack([np.full((16, 16), v, np.uint8) for v in (10, 20, 30, 40)])  # B, G, R, NIR
    path = _write(tmp_path / "ms.tif", data, "EPSG:32633", from_origin(500000, 4e6, 0.5, 0.5))
    info = raster.inspect_raster(path, bands=(3, 2, 1))
    image, _, _ = raster.read_raster(path, bands=(3, 2, 1))
    assert info.bands == (3, 2, 1) and np.allclose(image[0, 0] * 255, [30, 20, 10])
    assert raster.inspect_raster(path).bands == (1, 2, 3)  # default: the first three
    assert raster.inspect_raster(path, bands=(5,)) == ("unsupported_bands", "--bands 5 but the file has 4 band(s)")
    assert raster.inspect_raster(path, bands=(1, 2))[0] == "unsupported_bands"


def test_one_normalization_for_training_and_inference(tmp_path):
    """A 16-bit pan tile: the whole-raster normalization training uses equals what windows read."""
    rng = np.random.default_rng(0)
    data = (rng.gamma(2.0, 150.0, (1, 96, 96)) + 50).astype(np.uint16)
    data[0, :10, :] = 0  # nodata strip
    path = _write(tmp_path / "pan.tif", data, "EPSG:32633", from_origin(500000, 4e6, 0.5, 0.5), nodata=0)
    image, valid, info = raster.read_raster(path)
    trained = normalize.normalize_raster(data, data[0] != 0)
    assert valid.sum() == (data[0] != 0).sum()
    assert np.abs(image - trained).max() < 0.02  # same stretch (inference samples the file, decimated)
    assert np.array_equal(image[..., 0], image[..., 2])  # pan repeated into three channels
    assert image[~valid].max() == 0.0 and 0.0 <= image.min() and image.max() <= 1.0
    lo, hi = info.band_ranges[0]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(data[0][data[0] != 0], [2, 98])))
