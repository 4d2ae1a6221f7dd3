"""Reading GeoTIFF windows with rasterio (I/O module).

RGB 8-bit, 16-bit and single-band panchromatic rasters are normalized per band to [0, 1] (8-bit:
/255; other types: the 2nd-98th percentile of a decimated read, so one scale holds across a whole
file) and nodata (nodata value, internal masks, alpha) is carried as a `valid` mask. Datasets are
opened lazily and cached per worker; gs:// paths are read through `tessera.fileio`.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from tessera import fileio
from tessera.schemas.buildings import RasterInfo, WindowSpec
from tessera.transforms.buildings.grid import source_slices


def normalize_bands(raw: np.ndarray, ranges: tuple[tuple[float, float], ...]) -> np.ndarray:
    """[bands, H, W] raw values -> [H, W, 3] float32 in [0, 1]; one band is repeated (panchromatic)."""
    raw = np.asarray(raw, dtype=np.float32)
    lo = np.asarray([r[0] for r in ranges], np.float32)[:, None, None]
    hi = np.asarray([r[1] for r in ranges], np.float32)[:, None, None]
    scaled = np.clip((raw - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
    if scaled.shape[0] == 1:
        scaled = np.repeat(scaled, 3, axis=0)
    return np.ascontiguousarray(np.moveaxis(scaled, 0, -1))


def band_ranges(dtype: str, sample: np.ma.MaskedArray | None,
                n_bands: int = 1) -> tuple[tuple[float, float], ...]:
    """Per-band (low, high) used to normalize: 8-bit is absolute (as in training), anything else is
    stretched between the 2nd and 98th percentile of `sample` ([bands, h, w], nodata masked)."""
    if dtype == "uint8":
        return tuple((0.0, 255.0) for _ in range(n_bands))
    out = []
    for band in sample:
        values = band.compressed()
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(values, [2, 98])
        out.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return tuple(out)


_SAMPLE_PIXELS = 512  # decimated read used to find per-band ranges of non-8-bit rasters


def inspect_raster(path: str) -> RasterInfo | tuple[str, str]:
    """RasterInfo of a GeoTIFF, or (reason, detail) when it cannot be used."""
    import rasterio
    from rasterio.errors import RasterioIOError
    try:
        with _open(path) as ds:
            if ds.crs is None or ds.transform.is_identity:
                return "no_georeference", "no CRS or geotransform"
            if ds.crs.is_geographic:
                return "unsupported_crs", f"geographic CRS {ds.crs}: reproject to a metric CRS (UTM) first"
            t = ds.transform
            if t.b != 0 or t.d != 0 or t.a <= 0 or abs(t.e + t.a) > 1e-9 * t.a:
                return "unsupported_transform", f"rotated or non-square pixels: {tuple(t)[:6]}"
            if ds.count == 2:
                return "unsupported_bands", "2 bands (need 1 panchromatic or >= 3 with RGB first)"
            bands = (1,) if ds.count == 1 else (1, 2, 3)
            dtype = ds.dtypes[0]
            sample = None
            if dtype != "uint8":  # one stretch per file, from a decimated read (overviews if present)
                scale = max(1, math.ceil(max(ds.width, ds.height) / _SAMPLE_PIXELS))
                shape = (len(bands), max(1, ds.height // scale), max(1, ds.width // scale))
                sample = ds.read(bands, out_shape=shape, masked=True)
            return RasterInfo(path=path, crs_wkt=ds.crs.to_wkt(), transform=tuple(t)[:6],
                              width=ds.width, height=ds.height, band_count=ds.count, dtype=dtype,
                              nodata=ds.nodata, band_ranges=band_ranges(dtype, sample, len(bands)))
    except (RasterioIOError, rasterio.errors.RasterioError) as e:
        return "corrupt_file", str(e)[:500]


def _open(path: str):
    import rasterio
    if "://" in path and not path.startswith(("/vsi", "http")):
        return rasterio.open(fileio.open_read(path))  # gs:// etc. via Beam; rasterio reads file objects
    return rasterio.open(path)


class DatasetCache:
    """Open rasterio datasets, kept per worker; windows of one file usually arrive together."""

    def __init__(self, max_open: int = 16):
        self._max_open = max_open
        self._open: dict[str, object] = {}

    def get(self, path: str):
        ds = self._open.pop(path, None)
        if ds is None:
            ds = _open(path)
            if len(self._open) >= self._max_open:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
        self._open[path] = ds  # most recently used last
        return ds

    def close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()


def read_window(spec: WindowSpec, cache: DatasetCache):
    """Read and normalize one window from all its sources.

    Returns:
      (image [size, size, 3] float32, valid [size, size] bool, coverage {path: any valid pixel},
       failures [(path, detail)]). A failing source leaves its part of the window as nodata.
    """
    from rasterio.windows import Window
    n = spec.size
    image = np.zeros((n, n, 3), np.float32)
    valid = np.zeros((n, n), bool)
    coverage, failures = {}, []
    for info in spec.sources:
        sl = source_slices(spec, info)
        if sl is None:
            continue
        ((r0, r1), (c0, c1)), dst = sl
        bands = (1,) if info.band_count == 1 else (1, 2, 3)
        try:
            ds = cache.get(info.path)
            raw = ds.read(bands, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        except Exception as e:  # noqa: BLE001 - any read failure of a source becomes a dead letter
            failures.append((info.path, f"{type(e).__name__}: {e}"[:500]))
            continue
        ok = ~np.ma.getmaskarray(raw).all(axis=0)  # GDAL's dataset mask: valid if any band is
        part = normalize_bands(np.ma.getdata(raw), info.band_ranges)
        part[~ok] = 0.0
        target_valid = valid[dst]
        take = ok & ~target_valid  # first source (by path) wins where rasters overlap
        image[dst][take] = part[take]
        valid[dst] = target_valid | ok
        coverage[info.path] = coverage.get(info.path, False) or bool(ok.any())
    return image, valid, coverage, failures


logging.getLogger("rasterio").setLevel(logging.ERROR)
