"""The pixel grid that GeoTIFF tiles share, and the overlapping model windows planned on it (pure).

Every file with the same CRS, pixel size and sub-pixel phase lies on one global pixel grid anchored
at the CRS origin, and windows are cells of that grid (core `size - overlap` pixels, plus
`overlap / 2` of context on each side). Each file plans, on its own, the windows it touches;
grouping by window id then gives each window all the files it needs, so a building that straddles
two files is read whole by one window, exactly like one that straddles two windows. Reading the
pixels is `raster.read_window`; the Beam stages are in `stages.py`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np

from tessera.schemas.buildings import GridKey, RasterInfo, WindowSpec, grid_id

# ---- pure: grid and planning -------------------------------------------------------------------


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the UTM zone (WGS84) that contains (lat, lon)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


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


def pack_valid(valid: np.ndarray) -> bytes | None:
    """Bits of the valid mask, or None when every pixel is valid (the common case)."""
    if valid.all():
        return None
    return np.packbits(valid.ravel()).tobytes()
