"""Reading and writing the zoo in the released Small CNN Zoo layout (local or gs:// via FileSystems).

Workers write one shard per population (`shards/pop-XXXXX.npy` with the weight rows and
`pop-XXXXX.csv` with the metrics rows, network-major, networks in index order). The final step
merges the shards by network index (a k-way merge that holds one network per shard, never the
zoo) into `weights.npy`, `metrics.csv.gz` and `index.parquet`, each written to a temporary name
and renamed.
"""
from __future__ import annotations

import csv
import gzip
import heapq
import io
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tessera import fileio
from tessera.models import small_cnn
from tessera.models.zoo_weights import ZooFormatError, open_weights, read_layout  # noqa: F401 (re-exported)
from tessera.fileio import atomic_write_bytes, atomic_write_text, join, replace, temp_path

METRIC_NAMES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
CONFIG_COLUMNS = ("config.optimizer", "config.activation", "config.w_init", "config.init_std",
                  "config.learning_rate", "config.l2reg", "config.dropout", "config.train_fraction",
                  "config.b_init", "config.dataset")
COLUMNS = ("network_index", "step", "diverged") + CONFIG_COLUMNS + METRIC_NAMES
NUMERIC_CONFIG = ("config.init_std", "config.learning_rate", "config.l2reg", "config.dropout",
                  "config.train_fraction")
REQUIRED_FILES = ("weights.npy", "metrics.csv.gz", "layout.csv")


def _create(path: str):
    return fileio.create(path)


def _npy_header(shape: tuple, dtype=np.float32) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _npy_shape(f) -> tuple:
    """Shape from an open .npy file's header; leaves `f` at the first data byte."""
    major, _ = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return tuple(read_header(f)[0])


def _shard_descriptor(output_dir: str, name: str, rows: list[dict]) -> dict:
    """What AssembleZoo needs to find and merge a shard: its networks and row count, no arrays."""
    indices = sorted({int(r["network_index"]) for r in rows})
    return {"name": name, "indices": indices, "rows": len(rows), "dir": output_dir}


def write_shard(output_dir: str, name: str, weights: np.ndarray, rows: list[dict]) -> dict:
    """Atomically write one population's weight rows and metrics rows; returns its descriptor."""
    base = join(output_dir, "shards", name)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(weights, np.float32), allow_pickle=False)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(base + ".npy", buf.getvalue())
    atomic_write_bytes(base + ".csv", text.getvalue().encode())
    return _shard_descriptor(output_dir, name, rows)


def _read_shard(desc: dict, row_bytes: int):
    """Yield (network_index, weight bytes, csv rows) per network of one shard, streaming."""
    base = join(desc["dir"], "shards", desc["name"])
    with fileio.open_read(base + ".npy") as wf, fileio.open_read(base + ".csv") as mf:
        _npy_shape(wf)
        reader = csv.DictReader(io.TextIOWrapper(mf, encoding="utf-8"))
        per_net = desc["rows"] // max(len(desc["indices"]), 1)
        for index in desc["indices"]:
            rows = [next(reader) for _ in range(per_net)]
            if any(int(r["network_index"]) != index for r in rows):
                raise ZooFormatError(f"shard {desc['name']}: rows out of order at network {index}")
            yield index, wf.read(row_bytes * per_net), rows


def existing_shard(output_dir: str, name: str, expected_rows: list[dict], num_params: int) -> dict | None:
    """The descriptor of an already written shard that holds exactly `expected_rows`, else None.

    Used by `--resume`: a shard is reused only if both files exist (the CSV is written last), its
    rows name the same networks, checkpoints and sampled configs, and weights.npy has one row of
    `num_params` per metrics row; anything else (a stale shard of another seed, epoch count or
    dataset, a half-written pair) is retrained.
    """
    base = join(output_dir, "shards", name)
    if not (fileio.exists(base + ".npy") and fileio.exists(base + ".csv")):
        return None
    try:
        with fileio.open_read(base + ".csv", uncompressed=True) as f:
            rows = list(csv.DictReader(io.StringIO(f.read().decode())))
        keys = ("network_index", "step") + CONFIG_COLUMNS
        if [[str(r.get(k)) for k in keys] for r in rows] != [[str(r[k]) for k in keys] for r in expected_rows]:
            return None
        with fileio.open_read(base + ".npy", uncompressed=True) as f:
            if _npy_shape(f) != (len(rows), num_params):
                return None
    except ValueError:  # unreadable text or .npy header: not a finished shard, so retrain it
        return None
    return _shard_descriptor(output_dir, name, rows)


def assemble(output_dir: str, shards: list[dict], num_params: int = small_cnn.NUM_PARAMS) -> list[str]:
    """Merge population shards by network index into weights.npy, metrics.csv.gz, index.parquet.

    Memory is one network per shard plus one Parquet batch; shards are deleted afterwards.
    """
    row_bytes = num_params * 4
    total_rows = sum(s["rows"] for s in shards)
    paths = {k: join(output_dir, k) for k in ("weights.npy", "metrics.csv.gz", "index.parquet")}
    tmps = {k: temp_path(p) for k, p in paths.items()}
    merged = heapq.merge(*[_read_shard(s, row_bytes) for s in shards], key=lambda item: item[0])
    local_parquet = tempfile.NamedTemporaryFile(suffix=".parquet", delete=False).name
    index_batch, row = [], 0
    parquet = None
    with _create(tmps["weights.npy"]) as wf, _create(tmps["metrics.csv.gz"]) as raw:
        wf.write(_npy_header((total_rows, num_params)))
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:  # byte-identical reruns
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
            writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            for index, data, rows in merged:
                wf.write(data)
                writer.writerows(rows)
                index_batch.append(_index_row(index, row, rows))
                row += len(rows)
                if len(index_batch) >= 10_000:
                    parquet = _write_index_batch(parquet, local_parquet, index_batch)
                    index_batch = []
            text.flush()
            text.detach()
    parquet = _write_index_batch(parquet, local_parquet, index_batch)
    parquet.close()
    with open(local_parquet, "rb") as src, _create(tmps["index.parquet"]) as dst:
        dst.write(src.read())
    os.unlink(local_parquet)
    for key in paths:
        replace(tmps[key], paths[key])
    shard_files = [join(s["dir"], "shards", s["name"] + ext) for s in shards for ext in (".npy", ".csv")]
    fileio.delete(shard_files)
    return list(paths.values())


def _index_row(index: int, start: int, rows: list[dict]) -> dict:
    last = rows[-1]
    return {"network_index": index, "row_start": start, "row_end": start + len(rows),
            "diverged": last["diverged"] in ("True", "1", True),
            **{c: (_to_float(last[c]) if c in NUMERIC_CONFIG else str(last[c])) for c in CONFIG_COLUMNS},
            "final_step": int(last["step"]), "final_test_accuracy": _to_float(last["test_accuracy"])}


def _to_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _write_index_batch(writer, path: str, batch: list[dict]):
    if not batch and writer is not None:
        return writer
    table = pa.Table.from_pylist(batch) if batch else pa.table({"network_index": pa.array([], pa.int64())})
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


def write_layout(output_dir: str, channels: int = 1) -> str:
    path = join(output_dir, "layout.csv")
    atomic_write_text(path, small_cnn.layout_csv(channels))
    return path


# A features folder (benchmarks/zoo_gpu.py): the 56 statistics per network instead of all weights
FEATURES_FILES = ("features.npy", "network_indices.npy", "feature_names.json", "metrics.csv.gz")


def is_features_folder(zoo_dir: str) -> bool:
    return fileio.exists(join(zoo_dir, "features.npy"))


def input_files(zoo_dir: str) -> list[str]:
    """What zoo-predict reads from `zoo_dir` (a release-layout zoo or a features folder)."""
    names = FEATURES_FILES if is_features_folder(zoo_dir) else REQUIRED_FILES
    return [join(zoo_dir, name) for name in names]


def check_zoo(zoo_dir: str) -> None:
    """Raise ZooFormatError unless the release files (or a features folder's) exist."""
    missing = [p.rsplit("/", 1)[-1] for p in input_files(zoo_dir) if not fileio.exists(p)]
    if missing:
        raise ZooFormatError(f"{zoo_dir} is not a zoo directory (weights.npy, metrics.csv.gz, "
                             f"layout.csv) or features folder: missing {', '.join(missing)}")


def read_features(zoo_dir: str) -> tuple[dict[int, int], np.ndarray, list[str]]:
    """A features folder: ({network_index: row}, features (n, k), feature names)."""
    import json
    try:
        with fileio.open_read(join(zoo_dir, "features.npy")) as f:
            features = np.load(io.BytesIO(f.read()), allow_pickle=False)
        with fileio.open_read(join(zoo_dir, "network_indices.npy")) as f:
            indices = np.load(io.BytesIO(f.read()), allow_pickle=False)
        names = json.loads(fileio.read_bytes(join(zoo_dir, "feature_names.json")))
    except (ValueError, OSError, EOFError) as err:
        raise ZooFormatError(f"{zoo_dir}: unreadable features folder: {err}") from err
    if features.ndim != 2 or len(features) != len(indices) or features.shape[1] != len(names):
        raise ZooFormatError(f"{zoo_dir}: features.npy {features.shape}, {len(indices)} network "
                             f"indices and {len(names)} feature names do not agree")
    return {int(i): row for row, i in enumerate(indices)}, features, names


def read_metrics(zoo_dir: str):
    """metrics.csv.gz as a pandas DataFrame (one row per weights.npy row)."""
    import pandas as pd
    try:
        # UNCOMPRESSED: FileSystems would otherwise gunzip by extension before pandas does
        with fileio.open_read(join(zoo_dir, "metrics.csv.gz"), uncompressed=True) as f:
            return pd.read_csv(io.BytesIO(f.read()), compression="gzip")
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as err:
        raise ZooFormatError(f"{zoo_dir}/metrics.csv.gz is unreadable: {err}") from err
