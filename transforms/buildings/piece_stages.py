"""Beam stages around pieces (transforms/buildings/pieces.py): skip done windows on --resume,
write pieces as windows finish, read them all back for the final files, then remove them."""
from __future__ import annotations

import time

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

from tessera import fileio
from tessera.transforms.buildings.pieces import read_piece, read_piece_windows, write_piece

NAMESPACE = "buildings"


def _pattern(directory: str) -> str:
    return fileio.join(directory, "piece-*.parquet")


class ReadDoneWindows(beam.PTransform):
    """Ids of the windows that finished pieces in `directory` cover (empty when none)."""

    def __init__(self, directory: str):
        super().__init__()
        self._pattern = _pattern(directory)

    def expand(self, pbegin):
        return (pbegin
                | "PiecePattern" >> beam.Create([self._pattern])
                | "MatchPieces" >> beam_fileio.MatchAll(beam_fileio.EmptyMatchTreatment.ALLOW)
                | "PieceWindows" >> beam.FlatMap(lambda m: read_piece_windows(m.path)))


def skip_done(specs, done):
    """Drop the window specs a piece already covers; counts them in `windows_skipped_done`."""
    if done is None:
        return specs
    skipped = Metrics.counter(NAMESPACE, "windows_skipped_done")

    def keep(spec, done_ids):
        if spec.key in done_ids:
            skipped.inc()
            return False
        return True

    marks = done | "DoneIds" >> beam.Map(lambda key: (key, True))
    return specs | "SkipDoneWindows" >> beam.Filter(keep, beam.pvalue.AsDict(marks))


class _WritePiecesFn(beam.DoFn):
    """(window id, [Building]) -> a piece every `windows_per_piece` windows or `flush_s`
    seconds, and at the end of the bundle; yields the piece paths."""

    def __init__(self, directory: str, windows_per_piece: int, flush_s: float):
        self._directory, self._per_piece, self._flush_s = directory, windows_per_piece, flush_s
        self._written = Metrics.counter(NAMESPACE, "pieces_written")

    def start_bundle(self):
        self._ids, self._buildings, self._since = [], [], time.monotonic()

    def process(self, element):
        window_id, buildings = element
        self._ids.append(window_id)
        self._buildings.extend(buildings)
        if len(self._ids) >= self._per_piece or time.monotonic() - self._since >= self._flush_s:
            yield self._flush()

    def finish_bundle(self):
        if self._ids:
            yield window.GlobalWindows.windowed_value(self._flush())

    def _flush(self) -> str:
        path = write_piece(self._directory, self._ids, self._buildings)
        self._written.inc()
        self._ids, self._buildings, self._since = [], [], time.monotonic()
        return path


class WritePieces(beam.PTransform):
    def __init__(self, directory: str, windows_per_piece: int = 64, flush_s: float = 60.0):
        super().__init__()
        self._fn = _WritePiecesFn(directory, windows_per_piece, flush_s)

    def expand(self, polygonized):
        return polygonized | "WritePieces" >> beam.ParDo(self._fn)


def _list_pieces(_, written, pattern):
    del written  # a barrier only: listed once every piece of this run exists
    return sorted(m.path for m in fileio.match_paths(pattern))


class ReadAllPieces(beam.PTransform):
    """Applied to this run's written piece paths: every building of every piece in `directory`
    (this run's and a resumed run's predecessors'), read in parallel."""

    def __init__(self, directory: str):
        super().__init__()
        self._pattern = _pattern(directory)

    def expand(self, written):
        return (written.pipeline
                | "Start" >> beam.Create([None])
                | "ListPieces" >> beam.FlatMap(_list_pieces, beam.pvalue.AsList(written), self._pattern)
                | "SpreadPieces" >> beam.Reshuffle()
                | "ReadPiece" >> beam.FlatMap(read_piece))


def _remove_pieces(_, files, directory):
    del files  # a barrier only: pieces go once every final file is written
    paths = [m.path for m in fileio.match_paths(fileio.join(directory, "*"))]
    for start in range(0, len(paths), 100):  # a GCS batch request takes at most 100
        fileio.delete(paths[start:start + 100])
    fileio.remove_tree(directory)
    yield len(paths)


class RemovePieces(beam.PTransform):
    """Applied to the final files' paths: deletes the pieces; yields how many there were."""

    def __init__(self, directory: str):
        super().__init__()
        self._directory = directory

    def expand(self, files):
        return (files.pipeline
                | "Start" >> beam.Create([None])
                | "Remove" >> beam.FlatMap(_remove_pieces, beam.pvalue.AsList(files), self._directory))
