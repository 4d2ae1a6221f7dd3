"""Records of the Open Buildings pipeline: raster metadata, windows, building rows and their Arrow schema.

Release notes:
  1.0.0: first version; Open Buildings v3 fields (latitude, longitude, area_in_meters, confidence,
         geometry, full_plus_code) plus a GeoParquet 1.1 `bbox` covering and the id of the source
         window; the S2 token of the centroid is the Hive partition column.
"""
from __future__ import annotations

import dataclasses

import pyarrow as pa

SCHEMA_VERSION = "1.0.0"

# The official Open Buildings CSV header, in order.
CSV_COLUMNS = ("latitude", "longitude", "area_in_meters", "confidence", "geometry", "full_plus_code")


@dataclasses.dataclass(frozen=True)
class RasterInfo:
    """What planning and reading need to know about one GeoTIFF; small, so it ships between stages.

    `transform` is the GDAL-style north-up affine (a, b, c, d, e, f). `band_ranges` holds, per output
    band (1 or 3), the (low, high) raw values mapped to 0 and 1. `bands` are the file's band numbers
    read, in that order. When `warped`, the file is read through a GDAL warped VRT onto the grid that
    `crs_wkt`, `transform`, `width` and `height` describe (local UTM at the model's pixel size).
    """
    path: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    band_count: int
    dtype: str
    nodata: float | None
    band_ranges: tuple[tuple[float, float], ...]
    bands: tuple[int, ...] = (1,)
    warped: bool = False


@dataclasses.dataclass(frozen=True)
class GridKey:
    """One pixel grid shared by all files with the same CRS, pixel size and sub-pixel phase.

    Windows are cells of this grid, so files that tile a region share windows across their borders.
    """
    crs_wkt: str
    res: float
    phase_x: float
    phase_y: float


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """One model input: window (row, col) of a grid plus the rasters that overlap it.

    Global pixel rows [row0, row0 + size) are read; the window owns the core rows
    [core_row0, core_row0 + stride) (cores tile the grid without gaps or overlap).
    """
    grid: GridKey
    row: int
    col: int
    size: int
    overlap: int
    sources: tuple[RasterInfo, ...]

    @property
    def stride(self) -> int:
        return self.size - self.overlap

    @property
    def core_row0(self) -> int:
        return self.row * self.stride

    @property
    def core_col0(self) -> int:
        return self.col * self.stride

    @property
    def row0(self) -> int:
        return self.core_row0 - self.overlap // 2

    @property
    def col0(self) -> int:
        return self.core_col0 - self.overlap // 2

    @property
    def key(self) -> str:
        return f"{grid_id(self.grid)}/r{self.row}/c{self.col}"


def grid_id(grid: GridKey) -> str:
    """A short stable id of a grid (for keys and file names)."""
    import hashlib
    digest = hashlib.sha1(f"{grid.crs_wkt}|{grid.res!r}|{grid.phase_x!r}|{grid.phase_y!r}".encode())
    return digest.hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class Building:
    """One output row: the Open Buildings fields plus bbox, S2 token and source window."""
    latitude: float
    longitude: float
    area_in_meters: float
    confidence: float
    geometry: bytes  # WKB polygon, lon/lat (EPSG:4326, x = longitude)
    full_plus_code: str
    bbox: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in lon/lat
    s2_token: str
    source: str

    def to_row(self) -> dict:
        row = dataclasses.asdict(self)
        row["bbox"] = dict(zip(("xmin", "ymin", "xmax", "ymax"), self.bbox))
        row.pop(PARTITION_COLUMN)
        return row


BBOX_TYPE = pa.struct([
    pa.field("xmin", pa.float64(), nullable=False),
    pa.field("ymin", pa.float64(), nullable=False),
    pa.field("xmax", pa.float64(), nullable=False),
    pa.field("ymax", pa.float64(), nullable=False),
])

# Columns of each GeoParquet file. The S2 token is the Hive partition column (`s2_token=TOKEN/`
# directories), so it lives in the path, not in the file: readers of the directory
# (geopandas.read_parquet, pyarrow.dataset) get it back as a column.
PARTITION_COLUMN = "s2_token"

BUILDINGS_SCHEMA = pa.schema([
    pa.field("latitude", pa.float64(), nullable=False),
    pa.field("longitude", pa.float64(), nullable=False),
    pa.field("area_in_meters", pa.float64(), nullable=False),
    pa.field("confidence", pa.float64(), nullable=False),
    pa.field("geometry", pa.binary(), nullable=False),
    pa.field("full_plus_code", pa.string(), nullable=False),
    pa.field("bbox", BBOX_TYPE, nullable=False),
    pa.field("source", pa.string(), nullable=False),
], metadata={"tessera.schema": "buildings", "tessera.schema_version": SCHEMA_VERSION})
