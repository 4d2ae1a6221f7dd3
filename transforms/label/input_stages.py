"""Beam stages that read `tessera label` inputs as (key, bytes), and `--resume`'s anti-join.

Keys are the file path for image files and the record's id column for Parquet/TFRecord (else
"sha1:<digest of the image bytes>", which is stable across runs). `--resume` is an anti-join of the
input keys against the keys already in the output directory (label shards and dead-letter files),
done with CoGroupByKey so the set of finished keys never has to fit on the driver or in a side
input. The same join drops duplicate input keys (dead letter "duplicate_key"), which keeps
"labels + errors = inputs" exact.
"""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from tessera import fileio
from tessera.schemas.records import DeadLetter
from tessera.transforms.label.inputs import (DEAD, ERRORS_SUBDIR, LABELS_SUBDIR, NAMESPACE, content_key,
                                             detect_format, keys_from_jsonl, keys_from_parquet,
                                             record_to_keyed_bytes)
from tessera.transforms.core.tf_example import read_example


def _match(pipeline_or_pcoll, patterns: list[str], label: str, allow_empty: bool):
    treatment = (beam_fileio.EmptyMatchTreatment.ALLOW if allow_empty
                 else beam_fileio.EmptyMatchTreatment.DISALLOW)
    return (pipeline_or_pcoll
            | f"{label}Patterns" >> beam.Create(patterns)
            | f"{label}Match" >> beam_fileio.MatchAll(empty_match_treatment=treatment))


class _ReadKeysFn(beam.DoFn):
    def process(self, readable):
        path = readable.metadata.path
        if path.endswith(".parquet"):
            with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as f:
                yield from keys_from_parquet(f)
        else:
            yield from keys_from_jsonl(readable.read_utf8().splitlines())


class ReadDoneKeys(beam.PTransform):
    """Keys already written under `output_dir` (label shards + dead letters); empty when none.

    Only finished files match: label shards are renamed into place, and Beam's text sink moves
    dead-letter files out of its temp directory only on success.
    """

    def __init__(self, output_dir: str):
        super().__init__()
        self._patterns = [os.path.join(output_dir, LABELS_SUBDIR, "*.parquet"),
                          os.path.join(output_dir, ERRORS_SUBDIR, "*.jsonl")]

    def expand(self, pbegin):
        return (_match(pbegin, self._patterns, "Done", allow_empty=True)
                | "ReadDone" >> beam_fileio.ReadMatches()
                | "Keys" >> beam.ParDo(_ReadKeysFn()))


class _AntiJoinFn(beam.DoFn):
    """(key, {'input': [...], 'done': [...]}) -> payload of keys not yet done, one per key."""

    def __init__(self):
        self._skipped = Metrics.counter(NAMESPACE, "skipped_done")

    def process(self, element):
        key, groups = element
        inputs = list(groups["input"])
        if not inputs:
            return
        if list(groups["done"]):
            self._skipped.inc(len(inputs))
            return
        yield key, inputs[0]
        for _ in inputs[1:]:
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(key, "read", "duplicate_key",
                                                            "key seen more than once in inputs"))


class SkipDoneKeys(beam.PTransform):
    """Anti-join of (key, payload) against a PCollection of done keys; outputs .main and .dead."""

    def __init__(self, done_keys):
        super().__init__()
        self._done = done_keys

    def expand(self, keyed):
        done = self._done | "KeyDone" >> beam.Map(lambda k: (k, None))
        return ({"input": keyed, "done": done}
                | "CoGroup" >> beam.CoGroupByKey()
                | "AntiJoin" >> beam.ParDo(_AntiJoinFn()).with_outputs(DEAD, main="main"))


def _counted(element):
    Metrics.counter(NAMESPACE, "inputs").inc()
    return element


class _ReadFileBytesFn(beam.DoFn):
    def __init__(self, max_file_bytes: int):
        self._max = max_file_bytes

    def process(self, element):
        path, size = element
        if size is not None and size > self._max:
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                path, "read", "too_large", f"{size} bytes > limit {self._max}"))
            return
        try:
            with fileio.open_read(path, uncompressed=True) as f:
                data = f.read()
        except OSError as e:  # vanished between match and read, permission denied
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(path, "read", "unreadable", repr(e)))
            return
        yield path, data


class _RecordToKeyedBytesFn(beam.DoFn):
    def __init__(self, fmt: str, image_column: str | None, key_column: str | None):
        self._fmt, self._image_column, self._key_column = fmt, image_column, key_column

    def process(self, record):
        if self._fmt == "tfrecord":
            try:
                record = read_example(record)
            except (ValueError, UnicodeDecodeError) as e:
                yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                    content_key(record), "read", "bad_record", repr(e)))
                return
        key, data = record_to_keyed_bytes(record, image_column=self._image_column,
                                          key_column=self._key_column)
        if data is None:
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                key or "unknown", "read", "no_image", f"no image column among {sorted(record)}"))
            return
        yield key, data


class ReadLabelInputs(beam.PTransform):
    """Globs -> (key, encoded image bytes) not yet labelled, plus dead letters.

    Returns a dict {"main": PCollection[(str, bytes)], "dead": PCollection[DeadLetter]}.
    For image files the anti-join runs on paths before any byte is read, so a resumed run does
    not even open finished files; for record files it runs after the (splittable) read.
    """

    def __init__(self, patterns: list[str], done_keys, *, input_format: str = "auto",
                 image_column: str | None = None, key_column: str | None = None,
                 max_file_bytes: int = 256 << 20):
        super().__init__()
        self._patterns = list(patterns)
        formats = {detect_format(p) for p in self._patterns} if input_format == "auto" \
            else {input_format}
        if len(formats) != 1:
            raise ValueError(f"mixed input formats {sorted(formats)}; label them separately")
        self._format = formats.pop()
        self._done = done_keys
        self._image_column, self._key_column = image_column, key_column
        self._max_file_bytes = max_file_bytes

    @property
    def input_format(self) -> str:
        return self._format

    def expand(self, pbegin):
        if self._format == "images":
            paths = (_match(pbegin, self._patterns, "Inputs", allow_empty=False)
                     | "PathSize" >> beam.Map(lambda m: _counted((m.path, m.size_in_bytes))))
            joined = paths | "SkipDone" >> SkipDoneKeys(self._done)
            read = (joined.main
                    | "ReadBytes" >> beam.ParDo(_ReadFileBytesFn(self._max_file_bytes))
                    .with_outputs(DEAD, main="main"))
            dead = (joined.dead, read.dead) | "FlattenReadDead" >> beam.Flatten()
            return {"main": read.main, "dead": dead}
        patterns = pbegin | "Patterns" >> beam.Create(self._patterns)
        if self._format == "parquet":
            # Whole rows: the id and image columns are looked up per row (names vary by producer).
            records = patterns | "ReadParquet" >> beam.io.ReadAllFromParquet()
        elif self._format == "tfrecord":
            records = patterns | "ReadTFRecord" >> beam.io.ReadAllFromTFRecord()
        else:
            raise ValueError(f"unknown input format {self._format!r}")
        to_keyed = _RecordToKeyedBytesFn(self._format, self._image_column, self._key_column)
        keyed = (records
                 | "Count" >> beam.Map(_counted)
                 | "ToKeyedBytes" >> beam.ParDo(to_keyed).with_outputs(DEAD, main="main"))
        joined = keyed.main | "SkipDone" >> SkipDoneKeys(self._done)
        dead = (keyed.dead, joined.dead) | "FlattenReadDead" >> beam.Flatten()
        return {"main": joined.main, "dead": dead}
