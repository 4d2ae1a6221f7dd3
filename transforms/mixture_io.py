"""Reading mixture sources, validating their records, and encoding shard bytes deterministically.

Sources are Parquet (`id, image, prefix?, suffix`), JSONL (`image` as base64 or `image_path`
relative to the JSONL file) or TFRecords of tf.train.Example (`id`, `image/encoded`, `prefix`,
`suffix`, the layout this module writes). Every raw row becomes either a validated record or a
DeadLetter with a reason; nothing is dropped silently.

tf.train.Example is encoded by hand (the proto layout is five nested length-delimited fields)
with sorted feature keys, so shards are identical bytes on every machine and no TensorFlow import
is needed to write them; tests read them back with tf.data. The shard files themselves are
written by `mixture_write`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import posixpath
import struct
from typing import Any, Callable, Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.mixture import MIXTURE_ARROW_SCHEMA, FilterConfig, MixtureRecord, SourceConfig
from schemas.records import DeadLetter
from transforms import arrow_coder  # noqa: F401  (registers the coder for pa.Table)
from transforms.mixture_hash import decode_grey, phash_greys
from transforms.progress import count

NAMESPACE = "mixture"


# ---------------------------------------------------------------- pure: parsing and validation

def letter(source: str, rid: Any, stage: str, reason: str, detail: str = "") -> DeadLetter:
    """Dead letters are keyed `source/id` so stats can attribute them to their source."""
    return DeadLetter(key=f"{source}/{rid}", stage=stage, reason=reason, detail=detail[:500])


def source_of(key: str) -> str:
    return key.split("/", 1)[0]


def parse_json_line(source: str, filename: str, line: str) -> dict | DeadLetter:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return letter(source, f"<unparsed line in {posixpath.basename(filename)}>", "read",
                      "bad_json", f"{filename}: {e}")
    if not isinstance(row, dict):
        return letter(source, f"<non-object line in {posixpath.basename(filename)}>", "read",
                      "bad_json", f"{filename}: JSON value is {type(row).__name__}, not an object")
    row["_file"] = filename
    return row


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _proto_fields(buf: bytes) -> Iterable[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _feature_value(feature: bytes) -> Any:
    """First value of a Feature: bytes_list (1) as bytes, int64_list (3) as int; float_list ignored."""
    for kind, _, payload in _proto_fields(feature):
        for _, wire, value in _proto_fields(payload):
            if kind == 1:
                return value
            if kind == 3:
                return value if wire == 0 else _read_varint(value, 0)[0]  # plain or packed
    return None


def parse_example(source: str, data: bytes) -> dict | DeadLetter:
    """A serialized tf.train.Example -> row dict. A small wire-format reader, so no TF import."""
    row: dict[str, Any] = {}
    try:
        for number, _, features in _proto_fields(data):
            if number != 1:
                continue
            for _, _, entry in _proto_fields(features):
                key, value = None, None
                for field, _, payload in _proto_fields(entry):
                    if field == 1:
                        key = payload.decode("utf-8")
                    elif field == 2:
                        value = _feature_value(payload)
                if key is not None and value is not None:
                    row["image" if key == "image/encoded" else key] = value
    except (ValueError, UnicodeDecodeError, TypeError) as e:
        return letter(source, f"<record sha {hashlib.sha256(data).hexdigest()[:12]}>", "read",
                      "bad_tfrecord", f"not a tf.train.Example: {e}")
    for key in ("id", "prefix", "suffix"):
        if isinstance(row.get(key), bytes):
            row[key] = row[key].decode("utf-8", errors="replace")
    return row


def _image_bytes(row: dict, read_path: Callable[[str], bytes]) -> bytes:
    image = row.get("image")
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, str):
        try:
            return base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"image is not valid base64: {e}") from None
    path = row.get("image_path")
    if isinstance(path, str) and path:
        if "://" not in path and not path.startswith("/") and row.get("_file"):
            path = posixpath.join(posixpath.dirname(row["_file"]), path)
        return read_path(path)
    raise KeyError("image")


def check_fields(row: dict, source: SourceConfig,
                 read_path: Callable[[str], bytes]) -> tuple[str, str, str, bytes] | DeadLetter:
    """Row -> (id, prefix, suffix, image bytes), or a DeadLetter for a missing or unreadable field.

    Required: `id`, an image, `suffix`, and `prefix` unless the source config supplies one.
    """
    rid = row.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        where = posixpath.basename(str(row.get("_file", "")))
        return letter(source.name, f"<missing id{' in ' + where if where else ''}>", "validate",
                      "missing_field", "id")
    rid = str(rid)
    suffix = row.get("suffix")
    if not isinstance(suffix, str):
        return letter(source.name, rid, "validate", "missing_field", "suffix")
    prefix = row.get("prefix")
    prefix = prefix if isinstance(prefix, str) and prefix else source.prefix
    if prefix is None:
        return letter(source.name, rid, "validate", "missing_field", "prefix (none in record or source)")
    try:
        image_bytes = _image_bytes(row, read_path)
    except KeyError:
        return letter(source.name, rid, "validate", "missing_field", "image or image_path")
    except (OSError, ValueError) as e:
        return letter(source.name, rid, "validate", "unreadable_image", str(e))
    return rid, prefix, suffix, image_bytes


def check_image(source: str, rid: str, suffix: str, image_bytes: bytes,
                filters: FilterConfig) -> np.ndarray | DeadLetter:
    """Decode (whole file, so truncated images fail) and filter -> 32x32 grey thumbnail or DeadLetter."""
    try:
        grey, (w, h) = decode_grey(image_bytes)
    except ValueError as e:
        return letter(source, rid, "validate", "undecodable_image", str(e))
    if filters.min_side and min(w, h) < filters.min_side:
        return letter(source, rid, "filter", "too_small", f"{w}x{h} < {filters.min_side}")
    if filters.max_aspect and max(w, h) / max(min(w, h), 1) > filters.max_aspect:
        return letter(source, rid, "filter", "bad_aspect", f"{w}x{h} > {filters.max_aspect}")
    if filters.max_suffix_chars and len(suffix) > filters.max_suffix_chars:
        return letter(source, rid, "filter", "suffix_too_long",
                      f"{len(suffix)} > {filters.max_suffix_chars} chars")
    return grey


def validate_rows(rows: list[dict], source: SourceConfig, filters: FilterConfig,
                  read_path: Callable[[str], bytes]) -> list[tuple[MixtureRecord, str, int] | DeadLetter]:
    """Rows -> (record, content sha256, image pHash) or a DeadLetter each, in order.

    The pHashes of the batch are computed together (`phash_greys`); a row's result does not
    depend on the other rows of the batch.
    """
    out: list = []
    greys, positions = [], []
    for row in rows:
        fields = check_fields(row, source, read_path)
        if isinstance(fields, DeadLetter):
            out.append(fields)
            continue
        rid, prefix, suffix, image_bytes = fields
        grey = check_image(source.name, rid, suffix, image_bytes, filters)
        if isinstance(grey, DeadLetter):
            out.append(grey)
            continue
        record = MixtureRecord(id=rid, image=image_bytes, prefix=prefix, suffix=suffix, source=source.name)
        positions.append(len(out))
        greys.append(grey)
        out.append(record)
    for pos, phash in zip(positions, phash_greys(greys)):
        record = out[pos]
        out[pos] = (record, content_sha256(record), phash)
    return out


def validate_row(row: dict, source: SourceConfig, filters: FilterConfig,
                 read_path: Callable[[str], bytes]) -> tuple[MixtureRecord, str, int] | DeadLetter:
    """One row -> (record, content sha256, image pHash), or a DeadLetter saying why not."""
    return validate_rows([row], source, filters, read_path)[0]


def content_sha256(record: MixtureRecord) -> str:
    digest = hashlib.sha256(record.image)
    for text in (record.prefix, record.suffix):
        digest.update(b"\x00" + text.encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------- pure: encoding shards

_SMALL_VARINTS = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


_KEYS = {key: _field(1, key.encode()) for key in ("id", "image/encoded", "prefix", "source", "suffix")}


def example_bytes(record: MixtureRecord) -> bytes:
    """tf.train.Example with bytes features image/encoded, prefix, suffix, source, id (sorted)."""
    features = (  # in sorted key order
        ("id", record.id.encode("utf-8")),
        ("image/encoded", record.image),
        ("prefix", record.prefix.encode("utf-8")),
        ("source", record.source.encode("utf-8")),
        ("suffix", record.suffix.encode("utf-8")),
    )
    entries = b"".join(_field(1, _KEYS[key] + _field(2, _field(1, _field(1, value))))
                       for key, value in features)
    return _field(1, entries)


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


def tfrecord_bytes(records: Iterable[MixtureRecord]) -> bytes:
    return b"".join(tfrecord_frame(example_bytes(r)) for r in records)


def parquet_bytes(records: Iterable[MixtureRecord]) -> bytes:
    table = pa.Table.from_pylist([r.to_row() for r in records], schema=MIXTURE_ARROW_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def shard_name(index: int, num_shards: int, fmt: str) -> str:
    ext = "tfrecord" if fmt == "tfrecord" else "parquet"
    return f"mixture-{index:05d}-of-{num_shards:05d}.{ext}"


# ---------------------------------------------------------------- Beam: reading and writing

def _read_path(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


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
