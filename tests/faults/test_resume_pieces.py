"""What --resume keeps: buildings skip every window a piece names (and take its buildings from
the piece), label writes shards while a bundle is still running, pieces round-trip exactly."""
from __future__ import annotations

import glob
import os

import pyarrow.parquet as pq

from tessera.pipelines import buildings, common
from tessera.schemas.labels import LabelResult
from tessera.transforms.buildings.pieces import PIECES_SUBDIR, read_piece, read_piece_windows, write_piece
from tessera.transforms.label.stages import _WriteShardsFn
from tests.faults.killing import REPO

TIF = os.path.join(REPO, "tests", "data", "real", "rotterdam_pan1.tif")
LOCAL = ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"]


def _sources(out) -> list[str]:
    rows = []
    for path in glob.glob(os.path.join(out, "buildings", "**", "*.parquet"), recursive=True):
        rows += pq.read_table(path, columns=["source"]).column("source").to_pylist()
    return sorted(rows)


def test_resume_skips_the_windows_a_piece_names(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    assert buildings.main(["--input", TIF, "--output", str(ref), *LOCAL]) == 0
    sources = _sources(ref)
    window = sources[0]
    # A piece from an interrupted run that finished `window` and found nothing there: a resumed
    # run must trust it (skip the window), so that window's buildings are absent from the result.
    out = tmp_path / "resumed"
    write_piece(str(out / PIECES_SUBDIR), [window], [])
    counters = {}
    real_run = common.run_pipeline
    monkeypatch.setattr(common, "run_pipeline", lambda *a: counters.update(real_run(*a)) or counters)
    assert buildings.main(["--input", TIF, "--output", str(out), "--resume", *LOCAL]) == 0
    assert counters["buildings:windows_skipped_done"] == 1
    assert _sources(out) == [s for s in sources if s != window]
    assert not (out / PIECES_SUBDIR).exists()


def test_a_piece_round_trips_its_windows_and_buildings_exactly(tmp_path):
    from tessera.transforms.buildings.fields import building_record
    from shapely.geometry import box
    crs = "EPSG:32631"
    found = [building_record(box(600000 + i, 5700000, 600010 + i, 5700012), crs, confidence=0.5 + i / 10,
                             source="w1", s2_level=10, plus_code_length=11) for i in range(3)]
    path = write_piece(str(tmp_path), ["w2", "w1"], found)
    assert read_piece_windows(path) == ["w1", "w2"]
    assert read_piece(path) == found


def test_label_shards_are_written_while_the_bundle_runs(tmp_path):
    fn = _WriteShardsFn(str(tmp_path), rows_per_shard=1000, flush_s=1e-9)
    fn.start_bundle()
    written = [list(fn.process(LabelResult(key=f"k{i}", model="m", prompt="", text="t"))) for i in range(3)]
    assert [len(w) for w in written] == [1, 1, 1]  # one shard per row: the time bound, not the size
    assert len(glob.glob(str(tmp_path / "*.parquet"))) == 3
    assert list(fn.finish_bundle()) == []
