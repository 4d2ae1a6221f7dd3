"""Beam stages of Open Buildings: tiles -> windows, probabilities -> buildings, buildings -> files.

Thin wrappers: planning is `grid`, reading `raster`, polygonization `polygons`, fields `fields`,
file encoding `geoparquet`. Each drop bumps a `buildings` counter and becomes a dead letter.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from tessera.schemas.buildings import RasterInfo, WindowSpec
from tessera.schemas.records import DeadLetter
from tessera.transforms.buildings.fields import building_record
from tessera.transforms.buildings.geoparquet import write_partition
from tessera.transforms.buildings.piece_stages import skip_done
from tessera.transforms.buildings.grid import (WindowKey, assemble_window, check_window_config, pack_valid,
                                               plan_windows, window_core, window_transform)
from tessera.transforms.buildings.polygons import window_instances
from tessera.transforms.buildings.raster import MODEL_GSD_M, DatasetCache, inspect_raster, read_window




DEAD = "dead"
COVERAGE = "coverage"
NAMESPACE = "buildings"


class InspectRastersFn(beam.DoFn):
    """path -> RasterInfo, or a DeadLetter (corrupt_file, no_georeference, unsupported_*)."""

    def __init__(self, bands: tuple[int, ...] | None = None, gsd_m: float = MODEL_GSD_M):
        self._bands, self._gsd_m = bands, gsd_m

    def process(self, path: str):
        result = inspect_raster(path, self._bands, self._gsd_m)
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
    """PCollection[path] -> (windows: PCollection[(WindowKey, image)], dead_letters:
    PCollection[DeadLetter], planned: PCollection[int], the number of windows to read).

    `done`: optional PCollection of window ids to skip (finished by a run being resumed).
    """

    def __init__(self, size: int, overlap: int, bands: tuple[int, ...] | None = None,
                 gsd_m: float = MODEL_GSD_M, done=None):
        super().__init__()
        check_window_config(size, overlap)
        self._size, self._overlap = size, overlap
        self._inspect = InspectRastersFn(bands, gsd_m)
        self._done = done

    def expand(self, paths):
        inspected = paths | "InspectRasters" >> beam.ParDo(self._inspect).with_outputs(DEAD, main="ok")
        specs = (inspected.ok
                 | "PlanWindows" >> beam.FlatMap(plan_windows, self._size, self._overlap)
                 | "GroupWindowSources" >> beam.GroupByKey()
                 | "AssembleWindows" >> beam.FlatMap(_assemble, self._size, self._overlap))
        specs = skip_done(specs, self._done)
        planned = specs | "CountPlanned" >> beam.combiners.Count.Globally()
        read = specs | "ReadWindow" >> beam.ParDo(ReadWindowsFn()).with_outputs(DEAD, COVERAGE, main="windows")
        empty = (read[COVERAGE]
                 | "AnyValidPerTile" >> beam.CombinePerKey(any)
                 | "AllNodataTiles" >> beam.FlatMap(_all_nodata))
        dead = (inspected[DEAD], read[DEAD], empty) | "ReadDeadLetters" >> beam.Flatten()
        return read.windows, dead, planned


def _beam_count(name: str, n: int = 1) -> None:
    if n:
        Metrics.counter("buildings", name).inc(n)


class PolygonizeWindowsFn(beam.DoFn):
    """(WindowKey, probabilities) -> (window id, the Building rows (lon/lat fields) it owns)."""

    def __init__(self, *, threshold: float, core_threshold: float, min_area_m2: float,
                 min_core_area_m2: float, min_confidence: float, simplify_px: float, s2_level: int,
                 plus_code_length: int):
        self._params = dict(threshold=threshold, core_threshold=core_threshold,
                            min_confidence=min_confidence, simplify_px=simplify_px)
        self._min_area_m2 = min_area_m2
        self._min_core_area_m2 = min_core_area_m2
        self._fields = dict(s2_level=s2_level, plus_code_length=plus_code_length)

    def process(self, element):
        key, prob = element
        spec = key.spec
        prob = np.asarray(prob, np.float32).reshape(spec.size, spec.size)
        px_area = spec.grid.res ** 2
        found = window_instances(prob, key.valid(), transform=window_transform(spec), core=window_core(spec),
                                 min_area_px=max(1, int(round(self._min_area_m2 / px_area))),
                                 min_core_px=int(round(self._min_core_area_m2 / px_area)),
                                 count=_beam_count, **self._params)
        yield spec.key, [building_record(inst["geometry"], spec.grid.crs_wkt,
                                         confidence=inst["confidence"], source=spec.key, **self._fields)
                         for inst in found]
        _beam_count("buildings", len(found))


def _write_group(element, output_dir: str, fmt: str, max_rows: int):
    token, buildings = element
    buildings = list(buildings)
    paths = write_partition(output_dir, token, buildings, fmt, max_rows)
    Metrics.counter("buildings", "files_written").inc(len(paths))
    Metrics.counter("buildings", "buildings_written").inc(len(buildings))
    yield from paths


class WriteBuildings(beam.PTransform):
    """PCollection[Building] -> files partitioned by S2 token; returns the written paths."""

    def __init__(self, output_dir: str, fmt: str = "geoparquet", max_rows_per_file: int = 250_000):
        super().__init__()
        if fmt not in ("geoparquet", "csv"):
            raise ValueError(f"unknown format {fmt!r}")
        self._args = (output_dir, fmt, max_rows_per_file)

    def expand(self, buildings):
        return (buildings
                | "KeyByS2" >> beam.Map(lambda b: (b.s2_token, b))
                | "GroupByS2" >> beam.GroupByKey()
                | "WriteFiles" >> beam.FlatMap(_write_group, *self._args))
