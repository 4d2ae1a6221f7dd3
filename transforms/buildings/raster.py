"""Reading GeoTIFF windows with rasterio (I/O module).

Bands are normalized by `normalize.py` (the same functions training uses) and nodata (nodata value,
internal masks, alpha) is carried as a `valid` mask. Imagery as it comes is accepted: a geographic
(EPSG:4326), Web Mercator or rotated raster, or one whose pixels are far from the model's size, is
read through a GDAL warped VRT onto the local UTM grid at the model's pixel size, so the model
always sees ~0.5 m pixels in metres. Datasets are opened lazily and cached per worker; gs:// paths
are read through `tessera.fileio`.
"""
from __future__ import annotations

import logging
import math
import re

import numpy as np

from tessera import fileio
from tessera.schemas.buildings import RasterInfo, WindowSpec
from tessera.transforms.buildings.grid import source_slices, utm_epsg
from tessera.transforms.buildings.normalize import band_ranges, normalize_bands

MODEL_GSD_M = 0.5         # the U-Net's pixel size
GSD_TOLERANCE = 0.1       # rasters whose pixels differ more than this (relative) are resampled
_SAMPLE_PIXELS = 512      # decimated read used to find per-band ranges of non-8-bit rasters
_WEB_MERCATOR = (3857, 900913, 3785)


def choose_bands(count: int, bands: tuple[int, ...] | None) -> tuple[int, ...] | str:
    """The band numbers to read, or why they cannot be: 1 (panchromatic) or 3 (RGB order)."""
    if bands:
        if len(bands) not in (1, 3):
            return f"--bands takes 1 or 3 band numbers, got {len(bands)}"
        if max(bands) > count or min(bands) < 1:
            return f"--bands {','.join(map(str, bands))} but the file has {count} band(s)"
        return tuple(bands)
    if count == 2:
        return "2 bands (need 1 panchromatic or >= 3 with RGB first; or pick them with --bands)"
    return (1,) if count == 1 else (1, 2, 3)


def needs_warp(crs, transform, gsd_m: float) -> str | None:
    """Why a raster must be warped to local UTM at `gsd_m` (None: read it as it is)."""
    if crs.is_geographic:
        return f"geographic CRS {crs.to_string()}"
    if crs.to_epsg() in _WEB_MERCATOR:
        return "Web Mercator (its metres grow with latitude)"
    t = transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or abs(t.e + t.a) > 1e-6 * t.a:
        return "rotated or non-square pixels"
    metres = t.a * (crs.linear_units_factor[1] if crs.is_projected else 1.0)
    if gsd_m and abs(metres / gsd_m - 1.0) > GSD_TOLERANCE:
        return f"{metres:.3g} m pixels"
    return None


def warp_grid(ds, gsd_m: float):
    """(crs, transform, width, height) of the local UTM grid at `gsd_m` that covers `ds`.

    A UTM source keeps its zone; the origin snaps to multiples of `gsd_m`, so warped files of one
    area share one pixel grid (and windows across their borders).
    """
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.warp import transform_bounds

    lon0, lat0, lon1, lat1 = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    epsg = ds.crs.to_epsg()
    if not (epsg and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760)):
        epsg = utm_epsg((lat0 + lat1) / 2, (lon0 + lon1) / 2)
    dst = CRS.from_epsg(epsg)
    left, bottom, right, top = transform_bounds(ds.crs, dst, *ds.bounds, densify_pts=21)
    left, top = math.floor(left / gsd_m) * gsd_m, math.ceil(top / gsd_m) * gsd_m
    width = max(1, math.ceil((right - left) / gsd_m))
    height = max(1, math.ceil((top - bottom) / gsd_m))
    return dst, Affine(gsd_m, 0.0, left, 0.0, -gsd_m, top), width, height


def inspect_raster(path: str, bands: tuple[int, ...] | None = None,
                   gsd_m: float = MODEL_GSD_M) -> RasterInfo | tuple[str, str]:
    """RasterInfo of a GeoTIFF, or (reason, detail) when it cannot be used.

    Args:
      bands: file band numbers to read (1 or 3); default 1 for one band, else 1, 2, 3.
      gsd_m: the model's pixel size; 0 never resamples (CRS and rotation are still handled).
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    try:
        with _open(path) as ds:
            if ds.crs is None or ds.transform.is_identity:
                return "no_georeference", "no CRS or geotransform"
            chosen = choose_bands(ds.count, bands)
            if isinstance(chosen, str):
                return "unsupported_bands", chosen
            dtype = ds.dtypes[chosen[0] - 1]
            sample = None
            if dtype != "uint8":  # one stretch per file, from a decimated read (overviews if present)
                scale = max(1, math.ceil(max(ds.width, ds.height) / _SAMPLE_PIXELS))
                shape = (len(chosen), max(1, ds.height // scale), max(1, ds.width // scale))
                sample = ds.read(chosen, out_shape=shape, masked=True)
            ranges = band_ranges(dtype, sample, len(chosen))
            why = needs_warp(ds.crs, ds.transform, gsd_m)
            if why is None:
                crs, transform, width, height = ds.crs, ds.transform, ds.width, ds.height
            else:
                crs, transform, width, height = warp_grid(ds, gsd_m or abs(ds.res[0]))
                logging.getLogger(__name__).info("%s: %s; warped to %s at %.2f m", path, why,
                                                 crs.to_string(), transform.a)
            return RasterInfo(path=path, crs_wkt=crs.to_wkt(), transform=tuple(transform)[:6],
                              width=width, height=height, band_count=ds.count, dtype=dtype,
                              nodata=ds.nodata, band_ranges=ranges, bands=chosen,
                              warped=why is not None)
    except (RasterioIOError, rasterio.errors.RasterioError) as e:
        return "corrupt_file", error_chain(e)[:500]


def _open(path: str):
    import rasterio
    if "://" in path and not path.startswith(("/vsi", "http")):
        return rasterio.open(fileio.open_read(path))  # gs:// etc. via Beam; rasterio reads file objects
    return rasterio.open(path)


# ---------------------------------------------------------------- what a failed read says

_GENERIC = "See previous exception for details"  # rasterio's wrapper around GDAL's own errors
_BLOCK = re.compile(r"band (\d+): IReadBlock failed at X offset (\d+), Y offset (\d+)")


def error_chain(error: BaseException) -> str:
    """One line: the exception's type, then each distinct message down its __cause__ /
    __context__ chain, which is where rasterio keeps GDAL's errors (CPLE_*), outermost first.

    Why: rasterio's own message for a failed read is only "Read failed. See previous exception
    for details."; the block, the libtiff call and the bytes are in the chain.
    """
    messages, seen, e = [], set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = " ".join(str(e).split())
        if text and _GENERIC not in text and not any(text in m for m in messages):
            messages.append(text)
        e = e.__cause__ or e.__context__
    return f"{type(error).__name__}: {' <- '.join(messages) or ' '.join(str(error).split())}"


def _block_bytes(chain: str, ds, path: str) -> str:
    """Where GDAL's failing block lies in the file ("" if GDAL did not say or cannot tell)."""
    match = _BLOCK.search(chain)
    if match is None or ds is None:
        return ""
    band, x, y = (int(g) for g in match.groups())
    try:
        offset = int(ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band))
        file_size = fileio.match_paths(path)[0].size_in_bytes
    except Exception:  # noqa: BLE001 - only a hint: not a TIFF, no such metadata, no size
        return ""
    end = offset + size
    past = f" (the file ends {end - file_size} bytes before the block does)" if end > file_size else ""
    return f"; block x {x}, y {y} of band {band} is bytes {offset}..{end - 1} of the {file_size}-byte file{past}"


def read_failure(error: BaseException, info: RasterInfo, window, ds) -> str:
    """The dead letter detail of a window that could not be read: which pixels of which file
    (window offsets in the file's pixels, or the warped grid's), GDAL's messages, and the
    failing block's bytes in the file when GDAL names the block. `ds` is the opened file or None."""
    grid = " (warped grid)" if info.warped else ""
    chain = error_chain(error)
    return (f"window col {window.col_off}, row {window.row_off}, {window.width}x{window.height} px{grid} "
            f"of {info.path} (bands {','.join(map(str, info.bands))}): {chain}"
            f"{_block_bytes(chain, ds, info.path)}")


class DatasetCache:
    """Open rasterio datasets, kept per worker; windows of one file usually arrive together."""

    def __init__(self, max_open: int = 16):
        self._max_open = max_open
        self._open: dict[str, object] = {}

    def get(self, info: RasterInfo):
        """The dataset to read `info` from: the file, or its warped VRT."""
        key = self._key(info)
        entry = self._open.pop(key, None)
        if entry is None:
            entry = _open_for(info)
            if len(self._open) >= self._max_open:
                oldest = next(iter(self._open))
                _close(self._open.pop(oldest))
        self._open[key] = entry  # most recently used last
        return entry[-1]

    def file(self, info: RasterInfo):
        """The open file dataset behind `info` (not its VRT), or None if it is not open."""
        entry = self._open.get(self._key(info))
        return entry[0] if entry else None

    @staticmethod
    def _key(info: RasterInfo) -> tuple:
        return info.path, info.warped, info.transform if info.warped else None

    def close(self) -> None:
        for entry in self._open.values():
            _close(entry)
        self._open.clear()


def _open_for(info: RasterInfo) -> tuple:
    """(dataset, [vrt]): the file, plus the warped VRT onto the grid `info` describes."""
    ds = _open(info.path)
    if not info.warped:
        return (ds,)
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.vrt import WarpedVRT

    vrt = WarpedVRT(ds, crs=CRS.from_wkt(info.crs_wkt), transform=Affine(*info.transform),
                    width=info.width, height=info.height, resampling=Resampling.bilinear)
    return ds, vrt


def _close(entry: tuple) -> None:
    for ds in reversed(entry):
        ds.close()


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
        window = Window(c0, r0, c1 - c0, r1 - r0)
        try:
            raw = cache.get(info).read(info.bands, window=window, masked=True)
        except Exception as e:  # noqa: BLE001 - any read failure of a source becomes a dead letter
            failures.append((info.path, read_failure(e, info, window, cache.file(info))[:1000]))
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



def read_raster(path: str, bands: tuple[int, ...] | None = None, gsd_m: float = MODEL_GSD_M):
    """A whole raster as the model sees it: what `tessera buildings` reads window by window.

    Returns:
      (image [H, W, 3] float32 in [0, 1], valid [H, W] bool, RasterInfo of the grid read).
    Raises:
      ValueError: the raster cannot be used (the message says why, as the dead letter would).
    """
    info = inspect_raster(path, bands, gsd_m)
    if not isinstance(info, RasterInfo):
        raise ValueError(f"{path}: {info[0]}: {info[1]}")
    cache = DatasetCache(max_open=1)
    try:
        raw = cache.get(info).read(info.bands, masked=True)
    finally:
        cache.close()
    valid = ~np.ma.getmaskarray(raw).all(axis=0)
    image = normalize_bands(np.ma.getdata(raw), info.band_ranges)
    image[~valid] = 0.0
    return image, valid, info


logging.getLogger("rasterio").setLevel(logging.ERROR)
