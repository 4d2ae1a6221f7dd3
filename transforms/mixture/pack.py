"""Batches of records as one bytes value each, for the shuffles that carry image payloads.

Why: a runner encodes and decodes every shuffled value, and Beam's coder pays per Python object
(about 0.5 us each way for an (int, str, bytes) tuple). The DirectRunner does it three times per
shuffle (the producer, the runner's grouping buffer, the consumer) and once more per multi-input
Flatten, which it materializes. Packed, a batch of 20,000 records is one bytes value: a copy
instead of 60,000 objects built and torn down each time, and no garbage for the collector.

Layout (little-endian): n, the number of integer columns and the number of bytes columns as
uint64; each integer column as n uint64; each bytes column's n lengths as uint64; then the bytes
columns' data, column after column. `unpack` checks the sizes add up, so a cut or foreign value
fails loudly instead of yielding wrong records.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

_U64 = np.dtype("<u8")
_HEADER = 3 * _U64.itemsize


def pack(int_columns: Sequence[Sequence[int]], bytes_columns: Sequence[Sequence[bytes]]) -> bytes:
    """Columns of equal length (unsigned 64-bit integers, bytes values) -> one bytes value."""
    return b"".join(pack_parts(int_columns, bytes_columns))


def pack_parts(int_columns: Sequence[Sequence[int]], bytes_columns: Sequence[Sequence[bytes]],
               chunk_bytes: int = 1 << 20):
    """`pack` as a sequence of pieces of about `chunk_bytes` at most, to write to a file without
    building the whole value in memory first."""
    lengths = {len(c) for c in (*int_columns, *bytes_columns)}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    yield np.array([n, len(int_columns), len(bytes_columns)], dtype=_U64).tobytes()
    for column in int_columns:
        yield np.asarray(column, dtype=_U64).tobytes()
    sizes = [np.fromiter(map(len, c), dtype=_U64, count=n) for c in bytes_columns]
    for size in sizes:
        yield size.tobytes()
    for column, size in zip(bytes_columns, sizes):
        ends = np.cumsum(size)
        start = 0
        while start < n:  # cut where the running size passes each multiple of chunk_bytes
            stop = max(start + 1, int(np.searchsorted(ends, ends[start] - size[start] + chunk_bytes, "right")))
            yield b"".join(column[start:stop])
            start = stop


def unpack(data: bytes) -> tuple[list[np.ndarray], list[list[bytes]]]:
    """`pack`'s inverse: (integer columns as uint64 arrays, bytes columns as lists of bytes)."""
    if len(data) < _HEADER:
        raise ValueError(f"packed batch too short: {len(data)} bytes")
    n, n_int, n_bytes = (int(v) for v in np.frombuffer(data, _U64, 3))
    table_end = _HEADER + (n_int + n_bytes) * n * _U64.itemsize
    if table_end > len(data):
        raise ValueError(f"packed batch cut short: {len(data)} bytes, header says at least {table_end}")
    words = np.frombuffer(data, _U64, (n_int + n_bytes) * n, _HEADER).reshape(n_int + n_bytes, n)
    sizes = words[n_int:]
    if table_end + int(sizes.sum()) != len(data):
        raise ValueError(f"packed batch of {len(data)} bytes does not match its lengths")
    ends = (table_end + np.cumsum(sizes.ravel())).tolist()
    starts = [table_end, *ends[:-1]]
    columns = [[data[a:b] for a, b in zip(starts[c * n:(c + 1) * n], ends[c * n:(c + 1) * n])]
               for c in range(n_bytes)]
    return list(words[:n_int]), columns


def packed_len(data: bytes) -> int:
    """The number of rows in a packed batch, read from its header."""
    if len(data) < _HEADER:
        raise ValueError(f"packed batch too short: {len(data)} bytes")
    return int(np.frombuffer(data, _U64, 1)[0])


def pack_fields(fields: Sequence[str | bytes]) -> bytes:
    """A few str/bytes fields (str as UTF-8) -> one bytes value, for payloads that are not a
    ready shard record (Parquet output)."""
    return pack([], [[f.encode("utf-8") if isinstance(f, str) else f] for f in fields])


def unpack_fields(data: bytes) -> list[bytes]:
    return [column[0] for column in unpack(data)[1]]
