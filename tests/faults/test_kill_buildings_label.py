"""kill -9 `tessera buildings` and `tessera label` at 3 random moments, then --resume: the
outputs equal an uninterrupted run's (buildings: byte for byte), nothing lost or duplicated,
and COMPLETED appears only over a consistent directory."""
from __future__ import annotations

import glob
import io
import os

import pyarrow.parquet as pq
import pytest
from PIL import Image

from tessera.pipelines import buildings, label
from tests.faults import killing
from tests.fixtures.text_lines import find_fonts, render_line

TIF = os.path.join(killing.REPO, "tests", "data", "real", "rotterdam_pan1.tif")


def test_buildings_killed_three_times_resumes_to_identical_files(tmp_path, monkeypatch, capsys):
    flags = ["--input", TIF, "--flush-seconds", "0.2"]
    ref_out, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    ref = killing.run_reference(killing.command("buildings", [*flags, "--output", ref_out]), ref_out)
    first = killing.command("buildings", [*flags, "--output", out])
    moments = killing.kill_three_times_then_finish(first, first + ["--resume"], out, ref, "buildings")
    owned = ["buildings/**", "errors/**", "_pieces/**"]
    killing.check_consistent(out, owned)
    assert killing.read_bytes(out, "buildings/**") == killing.read_bytes(ref_out, "buildings/**"), moments
    assert killing.read_bytes(ref_out, "buildings/**")  # the tile has buildings to compare
    assert not os.path.exists(os.path.join(out, "_pieces"))
    assert (killing.jsonl_records(out, "errors/*.jsonl", ("key", "reason"))
            == killing.jsonl_records(ref_out, "errors/*.jsonl", ("key", "reason")))
    killing.check_rerun_semantics(buildings.main, [*flags, "--output", out], ["--threshold", "0.6"],
                     monkeypatch, capsys)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("lines")
    font = find_fonts()[0]
    for i in range(24):
        buf = io.BytesIO()
        Image.fromarray(render_line(f"line {i:02d}", font, 22, seed_index=i)).save(buf, "PNG")
        (root / f"l{i:02d}.png").write_bytes(buf.getvalue())
    (root / "l98.png").write_bytes(b"not an image")
    return root


def _labels(out: str) -> list[tuple]:
    rows = []
    for path in glob.glob(os.path.join(out, "labels", "*.parquet")):
        rows += [(r["key"], r["text"]) for r in pq.read_table(path, columns=["key", "text"]).to_pylist()]
    return sorted(rows)


def test_label_killed_three_times_resumes_without_loss_or_duplicates(corpus, tmp_path, monkeypatch, capsys):
    flags = ["--input", str(corpus / "*.png"), "--model", "ocr", "--batch-size", "2",
             "--bucket-shards", "2", "--flush-seconds", "0.2", "--run-id", "r"]
    ref_out, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    ref = killing.run_reference(killing.command("label", [*flags, "--output", ref_out]), ref_out)
    first = killing.command("label", [*flags, "--output", out])
    moments = killing.kill_three_times_then_finish(first, first + ["--resume"], out, ref, "label")
    killing.check_consistent(out, ["labels/**", "errors/**"])
    rows = _labels(out)
    assert rows == _labels(ref_out) and len(rows) == 24, moments
    assert len({key for key, _ in rows}) == len(rows)  # no key twice
    errors = killing.jsonl_records(out, "errors/*.jsonl", ("key", "reason"))
    assert errors == killing.jsonl_records(ref_out, "errors/*.jsonl", ("key", "reason")) and len(errors) == 1
    killing.check_rerun_semantics(label.main, [*flags, "--output", out], ["--top-k", "3"], monkeypatch, capsys)
