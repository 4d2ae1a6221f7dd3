"""A released zoo's weights as a checkpoint format: `weights.npy` rows laid out by `layout.csv`.

The Small CNN Zoo stores every network as one row of a 2-D `weights.npy`; `layout.csv`
(`varname,start_idx,end_idx,shape`) says which slice of a row is which variable. Reading lives here
(below both `models/small_cnn.py`, which loads `ZOO/weights.npy#ROW`, and `transforms/zoo/`, which
writes releases), so neither imports upward.
"""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from tessera import fileio
from tessera.fileio import join


class ZooFormatError(ValueError):
    """A zoo directory that is missing files or whose files disagree."""


def parse_layout_csv(text: str) -> list[tuple[str, int, int, tuple]]:
    """Inverse of `layout_csv`; raises ValueError on a malformed table."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or set(rows[0]) != {"varname", "start_idx", "end_idx", "shape"}:
        raise ValueError("layout.csv must have columns varname,start_idx,end_idx,shape")
    out = []
    for row in rows:
        shape = tuple(int(s) for s in row["shape"].strip("()").split(",") if s.strip())
        start, end = int(row["start_idx"]), int(row["end_idx"])
        if end - start != math.prod(shape):
            raise ValueError(f"layout row {row['varname']}: {end}-{start} != prod{shape}")
        out.append((row["varname"], start, end, shape))
    return out


def read_layout(zoo_dir: str):
    with fileio.open_read(join(zoo_dir, "layout.csv")) as f:
        try:
            return parse_layout_csv(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ZooFormatError(f"{zoo_dir}/layout.csv is malformed: {err}") from err


def open_weights(zoo_dir: str, table=None) -> np.ndarray:
    """weights.npy memory-mapped (local) or read (remote), checked against layout.csv (or `table`,
    the layout already read)."""
    path = join(zoo_dir, "weights.npy")
    try:
        if fileio.is_remote(path):
            with fileio.open_read(path) as f:
                weights = np.load(io.BytesIO(f.read()), allow_pickle=False)
        else:
            weights = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ZooFormatError(f"{path} is not a readable .npy array: {err}") from err
    width = (table if table is not None else read_layout(zoo_dir))[-1][2]
    if weights.ndim != 2 or weights.shape[1] != width:
        raise ZooFormatError(f"{path} has shape {weights.shape}; layout.csv says rows of {width}")
    return weights


def read_weight_row(weights_path: str, row: int):
    """One row of a zoo's weights.npy and the layout next to it (what `small_cnn:ZOO/weights.npy#ROW` loads)."""
    zoo_dir = os.path.dirname(weights_path)
    table = read_layout(zoo_dir)
    weights = open_weights(zoo_dir, table)
    if not 0 <= row < len(weights):
        raise ZooFormatError(f"{weights_path} has rows 0..{len(weights) - 1}; asked for row {row}")
    return np.asarray(weights[row]), table
