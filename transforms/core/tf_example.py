"""tf.train.Example and TFRecord framing in pure Python: read and write without importing TensorFlow.

An Example is five nested length-delimited protobuf messages (Example.features -> map entry ->
key / Feature -> BytesList | FloatList | Int64List -> values), small enough to walk by hand. Writing
by hand with sorted keys makes shards identical bytes on every machine; reading by hand keeps
TensorFlow out of workers that only need the bytes.
"""
from __future__ import annotations

import struct
from typing import Any, Iterable

import google_crc32c

_SMALL_VARINTS = [bytes((i,)) for i in range(128)]


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at `pos`; ValueError if truncated."""
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


def proto_fields(buf: bytes) -> Iterable[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message: ints for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire in (1, 2, 5):
            if wire == 2:
                size, pos = read_varint(buf, pos)
            else:
                size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature_values(feature: bytes) -> list:
    """Values of one Feature: bytes (bytes_list), floats (float_list) or ints (int64_list)."""
    values: list = []
    for kind, _, payload in proto_fields(feature):
        for _, wire, value in proto_fields(payload):
            if kind == 1:
                values.append(value)
            elif kind == 2:
                values.extend(struct.unpack(f"<{len(value) // 4}f", value))
            elif kind == 3 and wire == 0:
                values.append(_signed64(value))
            elif kind == 3:  # packed
                pos = 0
                while pos < len(value):
                    item, pos = read_varint(value, pos)
                    values.append(_signed64(item))
    return values


def read_example(data: bytes) -> dict[str, list]:
    """A serialized tf.train.Example -> {feature name: list of values}, as TF's proto gives them.

    Raises:
        ValueError (or UnicodeDecodeError for a non-UTF-8 key): not a tf.train.Example.
    """
    out: dict[str, list] = {}
    for number, _, features in proto_fields(data):
        if number != 1:
            continue
        for _, _, entry in proto_fields(features):
            key, values = None, []
            for field, _, payload in proto_fields(entry):
                if field == 1:
                    key = payload.decode("utf-8")
                elif field == 2:
                    values = _feature_values(payload)
            if key is not None:
                out[key] = values
    return out


def varint(n: int) -> bytes:
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def bytes_feature_entry(encoded_key: bytes, value: bytes) -> bytes:
    """One map entry `key -> Feature(bytes_list=[value])`; `encoded_key` is `field(1, key)`."""
    return field(1, encoded_key + field(2, field(1, field(1, value))))


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


class CorruptRecord(ValueError):
    """A TFRecord that cannot be read: where it starts (byte offset) and what is wrong with it."""

    def __init__(self, offset: int, problem: str):
        super().__init__(f"corrupt record at offset {offset}: {problem}")
        self.offset, self.problem = offset, problem


def _read_exact(f, n: int) -> bytes:
    """n bytes, or fewer only at the end of the file (streams may return short reads)."""
    parts, got = [], 0
    while got < n:
        part = f.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_tfrecords(f) -> Iterable[bytes]:
    """The records of a TFRecord stream, both CRCs checked (as TensorFlow and Beam do).

    Raises:
        CorruptRecord: at the first record that is truncated or fails a CRC; every record before
        it has been yielded. Framing has no sync marker, so nothing after it can be trusted.
    """
    offset = 0
    while True:
        header = _read_exact(f, 12)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecord(offset, f"truncated header ({len(header)} of 12 bytes)")
        if struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
            raise CorruptRecord(offset, "length CRC mismatch")
        (length,) = struct.unpack("<Q", header[:8])
        data = _read_exact(f, length + 4)
        if len(data) < length + 4:
            raise CorruptRecord(offset, f"truncated ({len(data)} of {length + 4} bytes after the header)")
        if struct.unpack("<I", data[length:])[0] != _masked_crc(data[:length]):
            raise CorruptRecord(offset, "data CRC mismatch")
        yield data[:length]
        offset += 12 + length + 4
