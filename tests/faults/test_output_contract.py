"""The output-directory contract (transforms/core/output_dir.py) on plain files: skip, refuse,
--overwrite, --resume, unfinished runs, a file where the directory should be."""
from __future__ import annotations

import json

import pytest

from tessera import fileio
from tessera.transforms.core import output_dir
from tessera.transforms.core.outputs import write_manifest

CONTRACT = output_dir.OutputContract("demo", owned=("part-*", "stats.json", "errors/"))
RESUMABLE = output_dir.OutputContract("demo", owned=("part-*", "errors/"), resumable=True)


def _finished_run(out, config, parts=("part-0", "part-1", "part-2", "part-3")):
    """What a finished run leaves: its files, then manifest.json and COMPLETED."""
    assert output_dir.prepare(str(out), CONTRACT, config)
    for name in parts:
        (out / name).write_text(name)
    (out / "errors").mkdir(exist_ok=True)
    (out / "errors" / "dead_letters-0.jsonl").write_text("{}\n")
    write_manifest(str(out), workload="demo", config=config, contract=CONTRACT)


def test_manifest_lists_exactly_the_owned_files_and_no_temporary_one(tmp_path):
    (tmp_path / "notes.txt").write_text("the user's, not the run's")
    (tmp_path / "part-9.tmp-abc").parent.mkdir(exist_ok=True)
    _finished_run(tmp_path, {"n": 4})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == [
        "errors/dead_letters-0.jsonl", "part-0", "part-1", "part-2", "part-3"]
    assert not (tmp_path / output_dir.RUNNING).exists()


def test_stale_temporary_files_are_removed_before_completed(tmp_path):
    assert output_dir.prepare(str(tmp_path), CONTRACT, {"n": 1})
    (tmp_path / "part-0").write_text("x")
    (tmp_path / "part-1.tmp-0123456789ab").write_text("half")  # a killed writer's leftover
    (tmp_path / "errors" / "beam-temp-dead_letters-1").mkdir(parents=True)  # a killed text sink's
    (tmp_path / "errors" / "beam-temp-dead_letters-1" / "x").write_text("half")
    write_manifest(str(tmp_path), workload="demo", config={"n": 1}, contract=CONTRACT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["COMPLETED", "errors", "manifest.json", "part-0"]
    assert not list((tmp_path / "errors").rglob("*.*")) and not list((tmp_path / "errors").rglob("x"))


def test_same_config_is_skipped_and_other_config_refused(tmp_path):
    _finished_run(tmp_path, {"n": 4, "input": "a"})
    before = (tmp_path / "manifest.json").read_text()
    assert output_dir.prepare(str(tmp_path), CONTRACT, {"n": 4, "input": "a"}) is False
    with pytest.raises(output_dir.OutputDirError, match=r"differs in: input, n\); pass --overwrite"):
        output_dir.prepare(str(tmp_path), CONTRACT, {"n": 2, "input": "b"})
    assert (tmp_path / "manifest.json").read_text() == before and (tmp_path / "COMPLETED").exists()


def test_overwrite_removes_every_owned_file_before_the_new_run(tmp_path):
    """The mixture case: 4 shards, then a run with 2 must not leave the old 4 beside them."""
    _finished_run(tmp_path, {"n": 4})
    (tmp_path / "notes.txt").write_text("the user's")
    assert output_dir.prepare(str(tmp_path), CONTRACT, {"n": 2}, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [output_dir.RUNNING, "notes.txt"]


def test_overwrite_deletes_the_marker_first(tmp_path, monkeypatch):
    """A crash while old files are being removed never leaves COMPLETED over a partial set."""
    _finished_run(tmp_path, {"n": 4})
    real_delete, calls = fileio.delete, []

    def failing_delete(paths):
        calls.append(paths)
        if len(calls) > 1:
            raise OSError("disk went away")
        real_delete(paths)

    monkeypatch.setattr(fileio, "delete", failing_delete)
    with pytest.raises(OSError):
        output_dir.prepare(str(tmp_path), CONTRACT, {"n": 2}, overwrite=True)
    assert calls[0] == [str(tmp_path / "COMPLETED")] and not (tmp_path / "COMPLETED").exists()


def test_an_unfinished_run_is_cleared_or_refused_or_resumed(tmp_path):
    out = tmp_path / "plain"
    assert output_dir.prepare(str(out), CONTRACT, {"n": 4})
    (out / "part-0").write_text("from a killed run")
    assert output_dir.prepare(str(out), CONTRACT, {"n": 4})  # not resumable: starts over
    assert not (out / "part-0").exists()

    out = tmp_path / "resumable"
    assert output_dir.prepare(str(out), RESUMABLE, {"n": 4})
    (out / "part-0").write_text("from a killed run")
    with pytest.raises(output_dir.OutputDirError, match="pass --resume to continue it or --overwrite"):
        output_dir.prepare(str(out), RESUMABLE, {"n": 4})
    with pytest.raises(output_dir.OutputDirError, match="used another config"):
        output_dir.prepare(str(out), RESUMABLE, {"n": 5}, resume=True)
    assert output_dir.prepare(str(out), RESUMABLE, {"n": 4}, resume=True)
    assert (out / "part-0").exists()  # kept for the resumed run to skip


def test_resume_is_refused_where_the_workload_cannot_resume(tmp_path):
    assert output_dir.prepare(str(tmp_path), CONTRACT, {"n": 4})
    (tmp_path / "part-0").write_text("x")
    with pytest.raises(output_dir.OutputDirError, match="cannot resume"):
        output_dir.prepare(str(tmp_path), CONTRACT, {"n": 4}, resume=True)


@pytest.mark.parametrize("where", ["itself", "parent"])
def test_a_file_where_the_directory_should_be_is_refused(tmp_path, where):
    (tmp_path / "taken").write_text("a file")
    out = tmp_path / "taken" if where == "itself" else tmp_path / "taken" / "sub"
    with pytest.raises(output_dir.OutputDirError, match="is a file; give a directory"):
        output_dir.prepare(str(out), CONTRACT, {"n": 1})
