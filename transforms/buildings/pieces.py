"""Pieces: what `tessera buildings` has finished so far, written as it goes (I/O module).

A piece holds the buildings of a few polygonized windows plus the ids of those windows (in the
Parquet metadata, so windows without buildings count as done too). Pieces are written atomically
under OUTPUT/_pieces/ while the model runs, so a killed run loses at most the windows since the
last piece, and `--resume` skips every window a piece names. The final S2-partitioned files are
written from all pieces at the end, then the pieces are removed. The round trip is exact: a
resumed run writes the same bytes as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from tessera import fileio
from tessera.schemas.buildings import BUILDINGS_SCHEMA, PARTITION_COLUMN, Building

PIECES_SUBDIR = "_pieces"
_WINDOWS_KEY = b"tessera.windows"
PIECE_SCHEMA = BUILDINGS_SCHEMA.append(pa.field(PARTITION_COLUMN, pa.string(), nullable=False))


def piece_name(window_ids: Iterable[str]) -> str:
    """Named by the windows it holds: a retried bundle rewrites the same file, never a twin."""
    digest = hashlib.sha1("\n".join(sorted(window_ids)).encode("utf-8")).hexdigest()[:20]
    return f"piece-{digest}.parquet"


def piece_bytes(window_ids: Sequence[str], buildings: Sequence[Building]) -> bytes:
    rows = [dataclasses.asdict(b) | {"bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), b.bbox))}
            for b in buildings]
    table = pa.Table.from_pylist(rows, schema=PIECE_SCHEMA)
    table = table.replace_schema_metadata({_WINDOWS_KEY: json.dumps(sorted(window_ids)).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_piece(directory: str, window_ids: Sequence[str], buildings: Sequence[Building]) -> str:
    path = fileio.join(directory, piece_name(window_ids))
    fileio.atomic_write_bytes(path, piece_bytes(window_ids, buildings))
    return path


def read_piece_windows(path: str) -> list[str]:
    """The window ids a piece covers (reads the footer only)."""
    with fileio.open_read(path) as f:
        meta = pq.read_schema(f).metadata or {}
    return json.loads(meta[_WINDOWS_KEY])


def read_piece(path: str) -> list[Building]:
    with fileio.open_read(path) as f:
        table = pq.read_table(f)
    out = []
    for row in table.to_pylist():
        box = row.pop("bbox")
        out.append(Building(**row, bbox=(box["xmin"], box["ymin"], box["xmax"], box["ymax"])))
    return out
