"""`tessera label` inputs: image files, or Parquet/TFRecord files of encoded images, as (key, bytes).

Keys are the file path for image files and the record's id column for Parquet/TFRecord (else
"sha1:<digest of the image bytes>", which is stable across runs). `--resume` is an anti-join of the
input keys against the keys already in the output directory (label shards and dead-letter files),
done with CoGroupByKey so the set of finished keys never has to fit on the driver or in a side
input. The same join drops duplicate input keys (dead letter "duplicate_key"), which keeps
"labels + errors = inputs" exact.
"""
from __future__ import annotations

import hashlib
import json
import os

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from schemas.records import DeadLetter

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
PARQUET_EXTENSIONS = (".parquet", ".pq")
TFRECORD_MARKERS = (".tfrecord", ".tfrecords", ".tfrec")
IMAGE_COLUMNS = ("image/encoded", "image", "image_bytes", "encoded", "bytes", "jpeg", "png")
KEY_COLUMNS = ("id", "key", "image/id", "image/key", "image/filename", "path", "filename")
DEAD = "dead"
NAMESPACE = "label"
LABELS_SUBDIR = "labels"
ERRORS_SUBDIR = "errors"


# ---- pure helpers --------------------------------------------------------------------------

def detect_format(pattern: str) -> str:
    """'parquet', 'tfrecord' or 'images', from the glob's file name."""
    name = os.path.basename(pattern).lower()
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    if any(m in name for m in TFRECORD_MARKERS):
        return "tfrecord"
    return "images"


def content_key(data: bytes) -> str:
    return "sha1:" + hashlib.sha1(data).hexdigest()


def _as_bytes(value) -> bytes | None:
    if isinstance(value, dict):  # Hugging Face style image struct {"bytes": ..., "path": ...}
        value = value.get("bytes")
    if isinstance(value, (list, tuple)) and len(value) == 1:  # tf.train.Example bytes_list
        value = value[0]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return None


def _as_key(value) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    if value is None or (isinstance(value, str) and not value):
        return None
    return str(value)


def record_to_keyed_bytes(record: dict, *, image_column: str | None = None,
                          key_column: str | None = None) -> tuple[str | None, bytes | None]:
    """(key, image bytes) from a Parquet row or a parsed tf.train.Example feature dict.

    The image is the first present column of `image_column` or IMAGE_COLUMNS; the key the first of
    `key_column` or KEY_COLUMNS, else a digest of the image bytes. Missing image -> (key, None).
    """
    data = None
    for col in ((image_column,) if image_column else IMAGE_COLUMNS):
        if col in record and (data := _as_bytes(record[col])) is not None:
            break
    key = None
    for col in ((key_column,) if key_column else KEY_COLUMNS):
        if col in record and (key := _as_key(record[col])) is not None:
            break
    if key is None and data is not None:
        key = content_key(data)
    return key, data


def parse_example(serialized: bytes) -> dict:
    """tf.train.Example -> {feature name: list of values} (TensorFlow imported on first use)."""
    from tensorflow.core.example import example_pb2
    example = example_pb2.Example.FromString(serialized)
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = list(getattr(feature, kind).value) if kind else []
    return out


def keys_from_parquet(data_file) -> list[str]:
    import pyarrow.parquet as pq
    return [k for k in pq.read_table(data_file, columns=["key"]).column("key").to_pylist() if k]


def keys_from_jsonl(lines) -> list[str]:
    keys = []
    for line in lines:
        line = line.strip()
        if line:
            keys.append(json.loads(line)["key"])
    return keys


# ---- PTransforms ---------------------------------------------------------------------------

def _match(pipeline_or_pcoll, patterns: list[str], label: str, allow_empty: bool):
    treatment = (fileio.EmptyMatchTreatment.ALLOW if allow_empty
                 else fileio.EmptyMatchTreatment.DISALLOW)
    return (pipeline_or_pcoll
            | f"{label}Patterns" >> beam.Create(patterns)
            | f"{label}Match" >> fileio.MatchAll(empty_match_treatment=treatment))


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
                | "ReadDone" >> fileio.ReadMatches()
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
        from apache_beam.io.filesystems import FileSystems
        path, size = element
        if size is not None and size > self._max:
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                path, "read", "too_large", f"{size} bytes > limit {self._max}"))
            return
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
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
                record = parse_example(record)
            except Exception as e:  # protobuf DecodeError has no common narrower base
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
