"""Reading mixture sources, validating their records, and encoding shard bytes deterministically.

Sources are Parquet (`id, image, prefix?, suffix`), JSONL (`image` as base64 or `image_path`
relative to the JSONL file) or TFRecords of tf.train.Example (`id`, `image/encoded`, `prefix`,
`suffix`, the layout this module writes). Every raw row becomes either a validated record or a
DeadLetter with a reason; nothing is dropped silently.

tf.train.Example is read and written by `transforms/core/tf_example.py` (by hand, sorted keys), so
shards are identical bytes on every machine and no TensorFlow import is needed; tests read them
back with tf.data. Beam reading is in
`read_stages.py`; shard files are written by `write_stages.py`.
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tessera.schemas.mixture import MIXTURE_ARROW_SCHEMA, FilterConfig, MixtureRecord, SourceConfig
from tessera.schemas.records import DeadLetter
from tessera.transforms.core import tf_example
from tessera.transforms.mixture.phash import decode_grey, phash_greys

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


def parse_example(source: str, data: bytes) -> dict | DeadLetter:
    """A serialized tf.train.Example -> row dict: the first value of each bytes or int64 feature
    (`image/encoded` becomes `image`); float features are ignored."""
    try:
        features = tf_example.read_example(data)
    except (ValueError, UnicodeDecodeError, TypeError, struct.error) as e:
        return letter(source, f"<record sha {hashlib.sha256(data).hexdigest()[:12]}>", "read",
                      "bad_tfrecord", f"not a tf.train.Example: {e}")
    row: dict[str, Any] = {}
    for key, values in features.items():
        if values and not isinstance(values[0], float):
            row["image" if key == "image/encoded" else key] = values[0]
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

_KEYS = {key: tf_example.field(1, key.encode()) for key in ("id", "image/encoded", "prefix", "source", "suffix")}


def example_bytes(record: MixtureRecord) -> bytes:
    """tf.train.Example with bytes features image/encoded, prefix, suffix, source, id (sorted)."""
    features = (  # in sorted key order
        ("id", record.id.encode("utf-8")),
        ("image/encoded", record.image),
        ("prefix", record.prefix.encode("utf-8")),
        ("source", record.source.encode("utf-8")),
        ("suffix", record.suffix.encode("utf-8")),
    )
    entries = b"".join(tf_example.bytes_feature_entry(_KEYS[key], value) for key, value in features)
    return tf_example.field(1, entries)


def tfrecord_bytes(records: Iterable[MixtureRecord]) -> bytes:
    return b"".join(tf_example.tfrecord_frame(example_bytes(r)) for r in records)


def parquet_bytes(records: Iterable[MixtureRecord]) -> bytes:
    table = pa.Table.from_pylist([r.to_row() for r in records], schema=MIXTURE_ARROW_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def shard_name(index: int, num_shards: int, fmt: str) -> str:
    ext = "tfrecord" if fmt == "tfrecord" else "parquet"
    return f"mixture-{index:05d}-of-{num_shards:05d}.{ext}"
