"""Building rows -> GeoParquet 1.1 files partitioned by S2 cell, or Open Buildings CSV (I/O module).

Every GeoParquet file carries `geo` metadata (version 1.1.0, WKB, Polygon, PROJJSON of EPSG:4326 with
lon/lat coordinates as GeoParquet prescribes, the file's bbox and the `bbox` covering column) that is
validated against the GeoParquet 1.1.0 JSON schema (PROJJSON checked against PROJ's own schema)
before the file is written. Files are written atomically (temporary name, then rename).
"""
from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from tessera import fileio
from tessera import schemas
from tessera.schemas.buildings import BUILDINGS_SCHEMA, CSV_COLUMNS, Building

GEOPARQUET_VERSION = "1.1.0"
_SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(schemas.__file__)), "geoparquet-1.1.0.schema.json")
PROJJSON_SCHEMA_ID = "https://proj.org/schemas/v0.7/projjson.schema.json"


def buildings_table(buildings: Sequence[Building]) -> pa.Table:
    """Rows -> Arrow table with exactly BUILDINGS_SCHEMA (sorted for reproducible files)."""
    rows = [b.to_row() for b in sorted(buildings, key=lambda b: (b.latitude, b.longitude, b.source))]
    return pa.Table.from_pylist(rows, schema=BUILDINGS_SCHEMA)


@functools.lru_cache(maxsize=1)
def wgs84_projjson() -> dict:
    from pyproj import CRS
    return CRS.from_epsg(4326).to_json_dict()


def geo_metadata(table: pa.Table) -> dict:
    """The GeoParquet `geo` metadata of a buildings table."""
    bbox = table.column("bbox").combine_chunks() if table.num_rows else None
    column = {
        "encoding": "WKB",
        "geometry_types": ["Polygon"],
        "crs": wgs84_projjson(),
        "edges": "planar",
        "orientation": "counterclockwise",
        "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
    }
    if bbox is not None:
        import pyarrow.compute as pc
        column["bbox"] = [pc.min(bbox.field("xmin")).as_py(), pc.min(bbox.field("ymin")).as_py(),
                          pc.max(bbox.field("xmax")).as_py(), pc.max(bbox.field("ymax")).as_py()]
    return {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema
    import pyproj
    from referencing import Registry, Resource
    with open(_SCHEMA_FILE) as f:
        schema = json.load(f)
    with open(os.path.join(pyproj.datadir.get_data_dir(), "projjson.schema.json")) as f:
        projjson = json.load(f)
    if projjson.get("$id") != PROJJSON_SCHEMA_ID:
        raise RuntimeError(f"PROJ ships PROJJSON schema {projjson.get('$id')}, expected {PROJJSON_SCHEMA_ID}")
    registry = Registry().with_resource(PROJJSON_SCHEMA_ID, Resource.from_contents(projjson))
    return jsonschema.Draft7Validator(schema, registry=registry)


def validate_geo_metadata(meta: dict, table: pa.Table | None = None) -> None:
    """Raise ValueError unless `meta` is valid GeoParquet 1.1 metadata (and fits `table`)."""
    errors = sorted(_validator().iter_errors(meta), key=lambda e: list(e.path))
    if errors:
        raise ValueError("invalid GeoParquet metadata: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:5]))
    if table is not None:
        for name, col in meta["columns"].items():
            if name not in table.column_names or table.schema.field(name).type != pa.binary():
                raise ValueError(f"geometry column {name!r} missing or not WKB binary")
            for key, (struct, field) in col.get("covering", {}).get("bbox", {}).items():
                kind = table.schema.field(struct).type.field(field).type
                if not pa.types.is_floating(kind):
                    raise ValueError(f"covering {key} -> {struct}.{field} is {kind}, not float")


def geoparquet_bytes(table: pa.Table) -> bytes:
    """Serialize a buildings table as GeoParquet; validates the schema contract and metadata first."""
    if not table.schema.equals(BUILDINGS_SCHEMA, check_metadata=False):
        raise ValueError(f"table does not match BUILDINGS_SCHEMA:\n{table.schema}")
    meta = geo_metadata(table)
    validate_geo_metadata(meta, table)
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(meta).encode()})
    buf = io.BytesIO()
    pq.write_table(table.cast(schema), buf, compression="zstd", row_group_size=50_000)
    return buf.getvalue()


def csv_gz_bytes(buildings: Iterable[Building]) -> bytes:
    """Open Buildings CSV (official header, WKT geometry), gzip-compressed, deterministic bytes."""
    import shapely
    rows = sorted(buildings, key=lambda b: (b.latitude, b.longitude, b.source))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for b in rows:
        wkt = shapely.to_wkt(shapely.from_wkb(b.geometry), rounding_precision=-1)
        writer.writerow([repr(b.latitude), repr(b.longitude), f"{b.area_in_meters:.4f}",
                         f"{b.confidence:.4f}", wkt, b.full_plus_code])
    return gzip.compress(text.getvalue().encode(), mtime=0)


def partition_paths(output_dir: str, token: str, n_parts: int, fmt: str) -> list[str]:
    if fmt == "csv":
        names = [f"{token}_buildings.csv.gz"] if n_parts == 1 else [
            f"{token}_buildings-{i:05d}.csv.gz" for i in range(n_parts)]
        return [fileio.join(output_dir, "buildings", n) for n in names]
    return [fileio.join(output_dir, "buildings", f"s2_token={token}", f"part-{i:05d}.parquet")
            for i in range(n_parts)]


def write_partition(output_dir: str, token: str, buildings: Sequence[Building], fmt: str = "geoparquet",
                    max_rows_per_file: int = 250_000) -> list[str]:
    """Write one S2 cell's buildings (sorted, split into parts); returns the written paths."""
    from tessera.fileio import atomic_write_bytes
    if fmt not in ("geoparquet", "csv"):
        raise ValueError(f"unknown format {fmt!r}")
    ordered = sorted(buildings, key=lambda b: (b.latitude, b.longitude, b.source))
    chunks = [ordered[i:i + max_rows_per_file] for i in range(0, len(ordered), max_rows_per_file)]
    paths = partition_paths(output_dir, token, len(chunks), fmt)
    for path, chunk in zip(paths, chunks):
        data = csv_gz_bytes(chunk) if fmt == "csv" else geoparquet_bytes(buildings_table(chunk))
        atomic_write_bytes(path, data)
    return paths
