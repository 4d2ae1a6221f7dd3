"""The V-MoE authors' checkpoint format (google-research/vmoe `vmoe/checkpoints/partitioned.py`,
`serialization.py`), read and written with msgpack and numpy only: no TensorFlow, flax or vmoe.

The released checkpoints (gs://vmoe_checkpoints/NAME) are a prefix with

  NAME.index                   msgpack {"shard_count": N, "index": tree, "version": "20220622"}
                               (older files have no version); each leaf of `tree` (the parameter
                               tree) is an IndexInfo: global shape and dtype, the slices the
                               array was cut into and the data shard that holds each slice;
  NAME.data-00000-of-0000N     msgpack {magic: True, "<leaf>": [[flat pieces, slice], ...]}: the
                               slices of the arrays, by leaf number in the tree's flattening
                               order (dict keys sorted, depth first, as jax flattens).

Arrays, slices and index entries are msgpack extension types (flax's ndarray = 1; vmoe's
ShapedArray = 4, Slice = 5, SliceNd = 6, IndexInfo = 8), each a msgpack-packed tuple.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import msgpack
import numpy as np

from tessera import fileio

_NDARRAY, _SHAPED_ARRAY, _SLICE, _SLICE_ND, _INDEX_INFO = 1, 4, 5, 6, 8
CHUNKS_KEY = "__msgpack_array_chunk_a87ca2__"  # vmoe's marker of an ArrayChunks map
VERSION = "20220622"  # vmoe partitioned.Version.V1


class ShardedCheckpointError(ValueError):
    """The files are not a readable V-MoE checkpoint (one line, naming the file)."""


class _IndexInfo(NamedTuple):  # vmoe's IndexInfo
    shape: tuple
    dtype: np.dtype
    slices: list
    shards: list


def _dtype(name: bytes):
    if name == b"bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name.decode())


def _ext_unpack(code: int, data: bytes):
    if code == _NDARRAY:
        shape, dtype, buffer = msgpack.unpackb(data, raw=True)
        return np.frombuffer(buffer, dtype=_dtype(dtype)).reshape(shape)
    if code == _SHAPED_ARRAY:
        shape, dtype, _, _ = msgpack.unpackb(data, raw=True)
        return tuple(shape), _dtype(dtype)
    if code == _SLICE:
        return slice(*msgpack.unpackb(data, raw=True))
    if code == _SLICE_ND:
        return tuple(_ext_unpack(_SLICE, s) for s in msgpack.unpackb(data, raw=True))
    if code == _INDEX_INFO:
        shaped, slices, shards = msgpack.unpackb(data, raw=True)
        return _IndexInfo(*_ext_unpack(_SHAPED_ARRAY, shaped),
                          [_ext_unpack(_SLICE_ND, s) for s in slices], list(shards))
    return msgpack.ExtType(code, data)


def _unpack(path: str):
    try:
        data = fileio.read_bytes(path)
    except OSError as err:  # also Beam's BeamIOError for gs://
        raise ShardedCheckpointError(f"{path}: cannot read it ({type(err).__name__})") from None
    try:
        return msgpack.unpackb(data, ext_hook=_ext_unpack, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise ShardedCheckpointError(f"{path}: not a V-MoE checkpoint file ({err})") from None


def _leaves(tree, prefix: str = ""):
    """(name, leaf) in jax's flattening order: dict keys sorted, depth first."""
    if isinstance(tree, dict):
        for key in sorted(tree):
            yield from _leaves(tree[key], f"{prefix}{key}/")
    else:
        yield prefix.rstrip("/"), tree


def data_shard(prefix: str, shard: int, count: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{count:05d}"


def read(prefix: str) -> dict[str, np.ndarray]:
    """All arrays of the checkpoint at `prefix` (local or gs://), by '/'-joined name.

    Raises:
      ShardedCheckpointError: an unreadable file, or data missing for an array.
    """
    index = _unpack(prefix + ".index")
    if not isinstance(index, dict) or "index" not in index or "shard_count" not in index:
        raise ShardedCheckpointError(f"{prefix}.index: no 'index'/'shard_count' entries")
    leaves = list(_leaves(index["index"]))
    arrays, filled = [], []
    for name, info in leaves:
        if not isinstance(info, _IndexInfo):
            raise ShardedCheckpointError(f"{prefix}.index: {name} is not an array entry")
        arrays.append(np.zeros(info.shape, info.dtype))
        filled.append(0)
    shards = sorted({s for _, info in leaves for s in info.shards})
    for shard in shards:
        path = data_shard(prefix, shard, index["shard_count"])
        chunks = _unpack(path)
        if not isinstance(chunks, dict) or not chunks.pop(CHUNKS_KEY, False):
            raise ShardedCheckpointError(f"{path}: not a V-MoE data shard")
        for leaf, pieces in chunks.items():
            i = int(leaf)
            for flat_pieces, where in pieces:
                size = math.prod(s.stop - s.start for s in where)
                data = np.concatenate(flat_pieces) if flat_pieces else np.zeros(0)
                if data.size != size or i >= len(arrays):
                    raise ShardedCheckpointError(f"{path}: a slice of {leaves[i][0]} has "
                                                 f"{data.size} values for {size} places")
                arrays[i][where] = data.reshape(arrays[i][where].shape)
                filled[i] += size
    missing = [name for (name, _), a, n in zip(leaves, arrays, filled) if n < a.size]
    if missing:
        raise ShardedCheckpointError(f"{prefix}: data shards lack values of {', '.join(missing)}")
    return {name: a for (name, _), a in zip(leaves, arrays)}


def _pack_slices(where: tuple[slice, ...]) -> bytes:
    return msgpack.packb(tuple(msgpack.packb((s.start, s.stop, s.step)) for s in where))


def _ndarray(a: np.ndarray) -> msgpack.ExtType:
    return msgpack.ExtType(_NDARRAY, msgpack.packb((a.shape, a.dtype.name, a.tobytes("C"))))


def write(prefix: str, flat: dict[str, np.ndarray], *, num_shards: int = 1,
          max_rows: int | None = None) -> list[str]:
    """Writes `flat` ('/'-joined names) as vmoe's `save_checkpoint` does; returns the paths.

    Arrays are cut along their first axis into slices of at most `max_rows` rows (vmoe cuts
    arrays over 256 MB the same way) and the slices dealt to `num_shards` data files in turn.
    """
    tree: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = np.asarray(value)
    index_tree: dict = {}
    pieces: list[dict] = [{} for _ in range(num_shards)]
    turn = 0
    for i, (name, array) in enumerate(_leaves(tree)):
        rows = array.shape[0] if array.ndim else 1
        step = max_rows or rows or 1
        slices, owners = [], []
        for start in range(0, max(rows, 1), step):
            where = tuple([slice(start, min(start + step, rows))] * bool(array.ndim) +
                          [slice(0, n) for n in array.shape[1:]])
            owner = turn % num_shards
            turn += 1
            chunk = np.ascontiguousarray(array[where]).reshape(-1)
            pieces[owner].setdefault(str(i), []).append(
                [[_ndarray(chunk)], msgpack.ExtType(_SLICE_ND, _pack_slices(where))])
            slices.append(_pack_slices(where))
            owners.append(owner)
        shaped = msgpack.packb((array.shape, array.dtype.name, False, {}))
        node = index_tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = msgpack.ExtType(_INDEX_INFO, msgpack.packb((shaped, tuple(slices),
                                                                 tuple(owners))))
    paths = []
    for shard, content in enumerate(pieces):
        paths.append(data_shard(prefix, shard, num_shards))
        fileio.atomic_write_bytes(paths[-1], msgpack.packb({CHUNKS_KEY: True, **content}))
    index = {"shard_count": num_shards, "index": index_tree, "version": VERSION}
    fileio.atomic_write_bytes(prefix + ".index", msgpack.packb(index))
    return [prefix + ".index"] + paths
