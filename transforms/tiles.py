"""GeoTIFF tiles -> overlapping model windows on a pixel grid shared by adjacent files (I/O module).

Planning is pure: every file with the same CRS, pixel size and sub-pixel phase lies on one global
pixel grid anchored at the CRS origin, and windows are cells of that grid (core `size - overlap`
pixels, plus `overlap / 2` of context on each side). Each file plans, on its own, the windows it
touches; grouping by window id then gives each window all the files it needs, so a building that
straddles two files is read whole by one window, exactly like one that straddles two windows.

Reading happens in `ReadWindowsFn` (rasterio windowed reads; datasets opened lazily and cached per
worker): RGB 8-bit, 16-bit and single-band panchromatic rasters are normalized per band to [0, 1]
(8-bit: /255; other types: the 2nd-98th percentile of a decimated read, so one scale holds across a
whole file) and nodata (nodata value, internal masks, alpha) is carried as a `valid` mask.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Iterable

import numpy as np

from schemas.buildings import GridKey, RasterInfo, WindowSpec, grid_id

# ---- pure: grid and planning -------------------------------------------------------------------


def grid_of(info: RasterInfo) -> tuple[GridKey, int, int]:
    """The grid a raster lies on, and the global (row, col) of the raster's pixel (0, 0)."""
    a, _, c, _, e, f = info.transform
    res = float(a)
    phase_x = _phase(c, res)
    phase_y = _phase(f, res)
    grid = GridKey(crs_wkt=info.crs_wkt, res=res, phase_x=phase_x, phase_y=phase_y)
    col0 = int(round((c - phase_x) / res))
    row0 = int(round((phase_y - f) / res))
    assert abs(e + a) <= 1e-9 * abs(a), "square pixels expected (checked when inspecting)"
    return grid, row0, col0


def _phase(origin: float, res: float) -> float:
    frac = round((origin % res) / res, 6) % 1.0
    return frac * res


def _index_range(start: int, length: int, size: int, overlap: int) -> range:
    """Window indices whose read extent [i*s - h, i*s - h + size) meets [start, start + length)."""
    stride, half = size - overlap, overlap // 2
    lo = math.floor((start - size + half) / stride) + 1
    hi = math.ceil((start + length + half) / stride) - 1
    return range(lo, hi + 1)


def plan_windows(info: RasterInfo, size: int, overlap: int) -> list[tuple[str, tuple[RasterInfo, bool]]]:
    """(window id, (raster, core_hit)) for every window whose read extent touches the raster.

    `core_hit` says whether the window's owned core overlaps the raster; windows that only reach a
    raster with their context margin still list it as a source (for context), but a window no
    raster's core touches is not run.
    """
    check_window_config(size, overlap)
    grid, row0, col0 = grid_of(info)
    stride = size - overlap
    gid = grid_id(grid)
    out = []
    for i in _index_range(row0, info.height, size, overlap):
        row_hit = i * stride < row0 + info.height and (i + 1) * stride > row0
        for j in _index_range(col0, info.width, size, overlap):
            col_hit = j * stride < col0 + info.width and (j + 1) * stride > col0
            out.append((f"{gid}/r{i}/c{j}", (info, bool(row_hit and col_hit))))
    return out


def check_window_config(size: int, overlap: int) -> None:
    if size <= 0 or size % 16:
        raise ValueError(f"tile size must be a positive multiple of 16 (U-Net), got {size}")
    if overlap < 0 or overlap % 2 or overlap >= size:
        raise ValueError(f"overlap must be even and in [0, tile size), got {overlap}")


def assemble_window(window_id: str, sources: Iterable[tuple[RasterInfo, bool]], size: int,
                    overlap: int) -> WindowSpec | None:
    """The window spec with all its source rasters (sorted by path), or None if no core touches data."""
    sources = list(sources)
    if not any(hit for _, hit in sources):
        return None
    infos = tuple(sorted({info.path: info for info, _ in sources}.values(), key=lambda r: r.path))
    grid, _, _ = grid_of(infos[0])
    _, r, c = window_id.rsplit("/", 2)
    return WindowSpec(grid=grid, row=int(r[1:]), col=int(c[1:]), size=size, overlap=overlap, sources=infos)


def window_transform(spec: WindowSpec) -> tuple[float, float, float, float, float, float]:
    """Affine of the window's pixel (0, 0) corner in the raster CRS."""
    g = spec.grid
    return (g.res, 0.0, g.phase_x + spec.col0 * g.res, 0.0, -g.res, g.phase_y - spec.row0 * g.res)


def window_core(spec: WindowSpec) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) of the owned core in window pixel coordinates."""
    half = spec.overlap // 2
    return (half, half, half + spec.stride, half + spec.stride)


def source_slices(spec: WindowSpec, info: RasterInfo):
    """(raster window ((r0, r1), (c0, c1)), destination slices) of a raster's part of the window."""
    _, row0, col0 = grid_of(info)
    r_lo, r_hi = max(spec.row0, row0), min(spec.row0 + spec.size, row0 + info.height)
    c_lo, c_hi = max(spec.col0, col0), min(spec.col0 + spec.size, col0 + info.width)
    if r_lo >= r_hi or c_lo >= c_hi:
        return None
    src = ((r_lo - row0, r_hi - row0), (c_lo - col0, c_hi - col0))
    dst = (slice(r_lo - spec.row0, r_hi - spec.row0), slice(c_lo - spec.col0, c_hi - spec.col0))
    return src, dst


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


@dataclasses.dataclass(frozen=True, eq=False)
class WindowKey:
    """Key of a window through the model stage: the spec, plus its nodata mask when it has one.

    str() is the short window id, which is what dead letters record.
    """
    spec: WindowSpec
    valid_bits: bytes | None = None

    def valid(self) -> np.ndarray | None:
        if self.valid_bits is None:
            return None
        n = self.spec.size
        return np.unpackbits(np.frombuffer(self.valid_bits, np.uint8), count=n * n).reshape(n, n).astype(bool)

    def __str__(self) -> str:
        return self.spec.key


# ---- I/O: rasterio -------------------------------------------------------------------------------

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
        from apache_beam.io.filesystems import FileSystems
        return rasterio.open(FileSystems.open(path))  # gs:// etc. via Beam; rasterio reads file objects
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


def pack_valid(valid: np.ndarray) -> bytes | None:
    """Bits of the valid mask, or None when every pixel is valid (the common case)."""
    if valid.all():
        return None
    return np.packbits(valid.ravel()).tobytes()


logging.getLogger("rasterio").setLevel(logging.ERROR)


# ---- Beam: thin PTransforms over the functions above ---------------------------------------------

import apache_beam as beam  # noqa: E402 - the I/O stages below are the only Beam users here
from apache_beam.metrics import Metrics  # noqa: E402

from schemas.records import DeadLetter  # noqa: E402

DEAD = "dead"
COVERAGE = "coverage"
NAMESPACE = "buildings"


class InspectRastersFn(beam.DoFn):
    """path -> RasterInfo, or a DeadLetter (corrupt_file, no_georeference, unsupported_*)."""

    def process(self, path: str):
        result = inspect_raster(path)
        if isinstance(result, RasterInfo):
            Metrics.counter(NAMESPACE, "tiles").inc()
            yield result
        else:
            reason, detail = result
            Metrics.counter(NAMESPACE, f"tiles_rejected:{reason}").inc()
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(path, "inspect", reason, detail))


class ReadWindowsFn(beam.DoFn):
    """WindowSpec -> (WindowKey, image); per-source coverage and read failures on side outputs."""

    def setup(self):
        self._cache = DatasetCache()

    def teardown(self):
        self._cache.close()

    def process(self, spec: WindowSpec):
        image, valid, coverage, failures = read_window(spec, self._cache)
        for path, detail in failures:
            Metrics.counter(NAMESPACE, "window_read_failures").inc()
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(f"{path}#{spec.key}", "read", "read_error", detail))
        for path, any_valid in coverage.items():
            yield beam.pvalue.TaggedOutput(COVERAGE, (path, any_valid))
        if not valid.any():
            Metrics.counter(NAMESPACE, "windows_empty").inc()
            return
        Metrics.counter(NAMESPACE, "windows").inc()
        yield WindowKey(spec, pack_valid(valid)), image


def _assemble(element, size: int, overlap: int):
    window_id, sources = element
    spec = assemble_window(window_id, sources, size, overlap)
    if spec is not None:
        yield spec


def _all_nodata(element):
    path, any_valid = element
    if not any_valid:
        Metrics.counter(NAMESPACE, "tiles_rejected:all_nodata").inc()
        yield DeadLetter(path, "read", "all_nodata", "every pixel is nodata")


class ReadWindows(beam.PTransform):
    """PCollection[path] -> (windows: PCollection[(WindowKey, image)], dead_letters: PCollection[DeadLetter])."""

    def __init__(self, size: int = 512, overlap: int = 64):
        super().__init__()
        check_window_config(size, overlap)
        self._size, self._overlap = size, overlap

    def expand(self, paths):
        inspected = paths | "InspectRasters" >> beam.ParDo(InspectRastersFn()).with_outputs(DEAD, main="ok")
        specs = (inspected.ok
                 | "PlanWindows" >> beam.FlatMap(plan_windows, self._size, self._overlap)
                 | "GroupWindowSources" >> beam.GroupByKey()
                 | "AssembleWindows" >> beam.FlatMap(_assemble, self._size, self._overlap))
        read = specs | "ReadWindow" >> beam.ParDo(ReadWindowsFn()).with_outputs(DEAD, COVERAGE, main="windows")
        empty = (read[COVERAGE]
                 | "AnyValidPerTile" >> beam.CombinePerKey(any)
                 | "AllNodataTiles" >> beam.FlatMap(_all_nodata))
        dead = (inspected[DEAD], read[DEAD], empty) | "ReadDeadLetters" >> beam.Flatten()
        return read.windows, dead
