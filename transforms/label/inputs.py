"""`tessera label` inputs, pure part: which format a pattern names, and records -> (key, bytes).

A record's key is its id column when it has one, else "sha1:<digest of the image bytes>", so a
key is stable across runs; the finished keys of an output directory come from its label shards
and dead-letter files. The Beam reads and the `--resume` anti-join are in `input_stages.py`.
"""
from __future__ import annotations

import hashlib
import json
import os


PARQUET_EXTENSIONS = (".parquet", ".pq")
TFRECORD_MARKERS = (".tfrecord", ".tfrecords", ".tfrec")
IMAGE_COLUMNS = ("image/encoded", "image", "image_bytes", "encoded", "bytes", "jpeg", "png")
KEY_COLUMNS = ("id", "key", "image/id", "image/key", "image/filename", "path", "filename")
DEAD = "dead"
NAMESPACE = "label"
LABELS_SUBDIR = "labels"
ERRORS_SUBDIR = "errors"


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
