"""Safe parameter files: flax msgpack or npz, local or gs:// (never pickle).

Paths go through `tessera.fileio` (Beam's FileSystems; local files where Beam is not installed,
as on a bare accelerator machine that only trains).
"""
from __future__ import annotations

import io

import numpy as np
from flax import serialization, traverse_util

from tessera.fileio import atomic_write_bytes, read_bytes

SEPARATOR = "/"


def _fmt(path: str) -> str:
    if path.endswith(".msgpack"):
        return "msgpack"
    if path.endswith(".npz"):
        return "npz"
    raise ValueError(f"unsupported parameter file {path!r}: use .msgpack (flax) or .npz")


def params_to_bytes(params, fmt: str) -> bytes:
    if fmt == "msgpack":
        return serialization.msgpack_serialize(_to_numpy(params))
    flat = traverse_util.flatten_dict(_to_numpy(params), sep=SEPARATOR)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


def params_from_bytes(data: bytes, fmt: str):
    if fmt == "msgpack":
        return serialization.msgpack_restore(data)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        flat = {k: npz[k] for k in npz.files}
    return traverse_util.unflatten_dict(flat, sep=SEPARATOR)


def save_params(path: str, params) -> None:
    """Atomically write `params` (a nested dict of arrays) as .msgpack or .npz."""
    atomic_write_bytes(path, params_to_bytes(params, _fmt(path)))


def load_params(path: str):
    """Read a nested dict of numpy arrays from .msgpack or .npz (allow_pickle=False)."""
    fmt = _fmt(path)
    return params_from_bytes(read_bytes(path), fmt)


def _to_numpy(tree):
    if isinstance(tree, dict) or hasattr(tree, "items"):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)
