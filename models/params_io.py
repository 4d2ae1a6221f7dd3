"""Safe parameter files: flax msgpack or npz, local or gs:// (never pickle).

Paths go through Beam's FileSystems. Where Beam is not installed (a bare accelerator machine that
only trains), local paths still work, so training code needs no fallback of its own.
"""
from __future__ import annotations

import io
import os

import numpy as np
from flax import serialization, traverse_util

try:
    from transforms.outputs import atomic_write_bytes, read_bytes
except ImportError:  # no apache_beam: local files only, same temp-then-rename write
    def atomic_write_bytes(path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def read_bytes(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

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
