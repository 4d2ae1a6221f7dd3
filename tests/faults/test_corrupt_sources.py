"""Corrupt input files become dead letters that name the file and say what failed; the run finishes.

Mixture: for each source format, a run over one good and some corrupt files writes the good
records, one `corrupt_file` letter per corrupt file (keyed `source/path`, detail "FORMAT: what
failed; N records of the file read before it (kept)"), counts the files in stats.json and still
balances read = written_unique + rejected. Buildings: a truncated GeoTIFF's `read_error` letters
name the window, the file, GDAL's own messages and the block's bytes.
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline

from tessera.pipelines.mixture import build as build_mixture
from tessera.schemas.mixture import MixtureRecord, mixture_config_from_dict
from tessera.transforms.core.tf_example import tfrecord_frame
from tessera.transforms.mixture.config import MixtureJobConfig
from tessera.transforms.mixture.records import example_bytes
from tests.fixtures.mixture_synth import distinct_image, encode, write_jsonl, write_parquet


# ---------------------------------------------------------------- mixture

def _rows(prefix: str, seeds) -> list[dict]:
    return [{"id": f"{prefix}{s}", "image": encode(distinct_image(s, 32)), "suffix": f"text {s}"}
            for s in seeds]


def _frames(rows: list[dict]) -> list[bytes]:
    return [tfrecord_frame(example_bytes(MixtureRecord(r["id"], r["image"], "p", r["suffix"], "x")))
            for r in rows]


def _run_mixture(root, fmt: str, out) -> tuple[list[str], list[dict], dict]:
    """(ids written, rejected letters, stats) of a one-source run over root/src/*."""
    cfg = mixture_config_from_dict({
        "name": "faults", "num_shards": 2, "format": "parquet",
        "sources": [{"name": "src", "path": f"{root}/src/*", "format": fmt, "prefix": "p"}]})
    pipeline = TestPipeline()
    build_mixture(pipeline, MixtureJobConfig(cfg, str(out)))
    pipeline.run().wait_until_finish()
    assert os.path.exists(os.path.join(out, "COMPLETED"))
    ids = sorted(i for p in glob.glob(os.path.join(out, "mixture-*.parquet"))
                 for i in pq.read_table(p).column("id").to_pylist())
    letters = []
    for path in glob.glob(os.path.join(out, "rejected", "*.jsonl")):
        with open(path) as f:
            letters += [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(out, "stats.json")) as f:
        stats = json.load(f)
    return ids, letters, stats


def _corrupt_letters(letters: list[dict]) -> dict[str, dict]:
    """corrupt_file letters by file path (the key is `source/path`)."""
    found = {d["key"].split("/", 1)[1]: d for d in letters if d["reason"] == "corrupt_file"}
    assert all(d["stage"] == "read" for d in found.values())
    return found


def _check_stats(stats: dict, read: int, kept: int, rejected_files: int) -> None:
    src = stats["sources"]["src"]
    assert (src["read"], src["kept"], src["rejected_files"]) == (read, kept, rejected_files)
    assert src["read"] == src["written_unique"] + src["rejected"] and stats["balanced"]
    assert stats["totals"]["rejected_files"] == rejected_files


def test_corrupt_parquet_files_become_dead_letters(tmp_path):
    src = tmp_path / "src"
    write_parquet(str(src / "good.parquet"), _rows("g", range(4)))
    write_parquet(str(tmp_path / "whole.parquet"), _rows("h", range(10, 14)))
    data = (tmp_path / "whole.parquet").read_bytes()
    (src / "half.parquet").write_bytes(data[:len(data) // 2])       # no footer
    (src / "empty.parquet").write_bytes(b"")

    ids, letters, stats = _run_mixture(tmp_path, "parquet", tmp_path / "out")
    assert ids == ["g0", "g1", "g2", "g3"]
    bad = _corrupt_letters(letters)
    assert sorted(bad) == [str(src / "empty.parquet"), str(src / "half.parquet")]
    for letter in bad.values():
        assert letter["detail"].startswith("parquet: ")
        assert "0 records of the file read" in letter["detail"]
    assert "size is 0 bytes" in bad[str(src / "empty.parquet")]["detail"]
    _check_stats(stats, read=6, kept=4, rejected_files=2)


def test_corrupt_tfrecord_files_keep_the_records_before_the_corruption(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.tfrecord").write_bytes(b"".join(_frames(_rows("g", range(3)))))
    frames = _frames(_rows("c", range(10, 14)))
    bad_crc = bytearray(b"".join(frames))
    offset = len(frames[0]) + len(frames[1])       # the third record's data gets one byte flipped
    bad_crc[offset + 12 + 5] ^= 0xFF
    (src / "bad_crc.tfrecord").write_bytes(bytes(bad_crc))
    frames = _frames(_rows("t", range(20, 22)))
    (src / "cut.tfrecord").write_bytes(frames[0] + frames[1][:len(frames[1]) // 2])

    ids, letters, stats = _run_mixture(tmp_path, "tfrecord", tmp_path / "out")
    assert ids == ["c10", "c11", "g0", "g1", "g2", "t20"]
    bad = _corrupt_letters(letters)
    assert sorted(bad) == [str(src / "bad_crc.tfrecord"), str(src / "cut.tfrecord")]
    crc = bad[str(src / "bad_crc.tfrecord")]["detail"]
    assert crc.startswith(f"tfrecord: corrupt record at offset {offset}: data CRC mismatch")
    assert "2 records of the file read before it (kept)" in crc
    cut = bad[str(src / "cut.tfrecord")]["detail"]
    assert cut.startswith(f"tfrecord: corrupt record at offset {len(frames[0])}: truncated")
    assert "1 record of the file read before it (kept)" in cut
    _check_stats(stats, read=8, kept=6, rejected_files=2)


def test_binary_jsonl_file_becomes_one_dead_letter(tmp_path):
    src = tmp_path / "src"
    write_jsonl(str(src / "good.jsonl"), _rows("g", range(3)))
    garbage = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (src / "garbage.jsonl").write_bytes(b'{"id": "x1", "suffix": "s"}\n' + b"\xff\xfe" + garbage)
    (src / "empty.jsonl").write_bytes(b"")                   # a valid JSONL file with no records

    ids, letters, stats = _run_mixture(tmp_path, "jsonl", tmp_path / "out")
    assert ids == ["g0", "g1", "g2"]
    bad = _corrupt_letters(letters)
    assert list(bad) == [str(src / "garbage.jsonl")]
    detail = bad[str(src / "garbage.jsonl")]["detail"]
    assert detail.startswith("jsonl: line 2 (byte offset 28) is not UTF-8")
    assert "1 record of the file read before it (kept)" in detail
    # the line read before the garbage is a record like any other (here: it has no image)
    assert any(d["key"] == "src/x1" and d["reason"] == "missing_field" for d in letters)
    _check_stats(stats, read=5, kept=3, rejected_files=1)


# ---------------------------------------------------------------- buildings

def _tiled_tif(path, size: int = 128, block: int = 32) -> None:
    """An uncompressed, tiled, pixel-interleaved RGB GeoTIFF on the buildings fixtures' grid."""
    import rasterio
    from rasterio.transform import from_origin
    from tests.fixtures.buildings import EPSG, RES, X0, Y0, rgb_scene
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                       crs=f"EPSG:{EPSG}", transform=from_origin(X0, Y0, RES, RES), tiled=True,
                       blockxsize=block, blockysize=block) as ds:
        ds.write(rgb_scene(size, size, [(10, 10, 20, 20)]))


def test_truncated_geotiff_dead_letters_name_window_file_and_gdal_error(tmp_path):
    from tessera.pipelines.buildings import BuildingsConfig, build
    from tests.fixtures.buildings import RED_BAND
    tif = tmp_path / "cut.tif"
    _tiled_tif(tif)
    data = tif.read_bytes()
    tif.write_bytes(data[:int(len(data) * 0.6)])
    model = tmp_path / "red_band.model"
    model.write_bytes(b"stand-in: probability = red band")
    out = tmp_path / "out"
    config = BuildingsConfig(input=str(tif), output=str(out), model=f"{RED_BAND.name}:{model}",
                             tile_size=48, overlap=16, min_area_m2=1.0, simplify_px=0.0)
    with TestPipeline() as p:
        build(p, config)
    letters = []
    for path in glob.glob(os.path.join(out, "errors", "*.jsonl")):
        with open(path) as f:
            letters += [json.loads(line) for line in f if line.strip()]
    reads = [d for d in letters if d["reason"] == "read_error"]
    assert reads and all(d["key"].startswith(f"{tif}#") for d in reads)
    for d in reads:
        detail = d["detail"]
        assert detail.startswith("window col ") and f" of {tif}" in detail
        assert "Read failed" not in detail
        assert "IReadBlock failed at X offset" in detail and "TIFFReadEncodedTile" in detail
        assert f"of the {len(data[:int(len(data) * 0.6)])}-byte file" in detail
    assert os.path.exists(os.path.join(out, "COMPLETED"))


def test_read_window_failure_detail(tmp_path):
    """The detail of one failing window, spelled out (64 px windows on the file's 32 px blocks)."""
    from tessera.transforms.buildings.grid import assemble_window, plan_windows, source_slices
    from tessera.transforms.buildings.raster import DatasetCache, inspect_raster, read_window
    tif = tmp_path / "cut.tif"
    _tiled_tif(tif)
    data = tif.read_bytes()
    size = int(len(data) * 0.6)   # keeps the first ~9 of 16 blocks
    tif.write_bytes(data[:size])
    info = inspect_raster(str(tif))
    specs = [assemble_window(wid, [part], 64, 0) for wid, part in plan_windows(info, 64, 0)]
    by_offset = {}
    for spec in specs:
        ((r0, _), (c0, _)), _ = source_slices(spec, info)
        by_offset[(r0, c0)] = spec
    cache = DatasetCache()
    try:
        failures = {offset: read_window(spec, cache)[3] for offset, spec in by_offset.items()}
    finally:
        cache.close()
    assert failures[(0, 0)] == []
    [(path, detail)] = failures[(64, 64)]
    assert path == str(tif)
    assert detail.startswith(f"window col 64, row 64, 64x64 px of {tif} (bands 1,2,3): ")
    assert "IReadBlock failed at X offset 2, Y offset 2" in detail
    assert "TIFFReadEncodedTile:Read error" in detail
    assert "block x 2, y 2 of band 1 is bytes " in detail and f"of the {size}-byte file" in detail
