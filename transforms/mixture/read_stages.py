"""Beam: one mixture source config -> raw rows (parsed by `records.py`) or Arrow row groups."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from tessera.schemas.mixture import SourceConfig
from tessera.transforms.core import arrow_coder  # noqa: F401  (registers the coder for pa.Table)
from tessera.transforms.mixture.records import parse_example, parse_json_line


class ReadSource(beam.PTransform):
    """One source config -> PCollection of raw row dicts, DeadLetters (unparseable lines) or, for
    Parquet, Arrow tables of rows (one element per row group instead of one per row: the front
    of the pipeline is where per-element costs add up)."""

    def __init__(self, source: SourceConfig):
        super().__init__()
        self._source = source

    def expand(self, pbegin):
        s = self._source
        if s.format == "parquet":
            # typed, so the tables get ArrowTableCoder instead of being pickled to estimate sizes
            return pbegin | "ReadParquet" >> beam.io.ReadFromParquetBatched(s.path).with_output_types(pa.Table)
        if s.format == "jsonl":
            return (pbegin
                    | "ReadJsonl" >> beam.io.ReadFromTextWithFilename(s.path)
                    | "ParseJson" >> beam.MapTuple(lambda f, line, name=s.name: parse_json_line(name, f, line)))
        return (pbegin
                | "ReadTFRecord" >> beam.io.ReadFromTFRecord(s.path)
                | "ParseExample" >> beam.Map(lambda b, name=s.name: parse_example(name, b)))
