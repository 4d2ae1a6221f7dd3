"""Atomic outputs, manifests, the COMPLETED marker and dead-letter files."""
import glob
import io
import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from tessera import fileio
from tessera.models import params_io
from tessera.schemas.records import DeadLetter
from tessera.transforms.core import outputs


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = str(tmp_path / "sub" / "a.json")
    fileio.atomic_write_json(path, {"b": 1})
    fileio.atomic_write_json(path, {"b": 2})  # overwrite is atomic too
    assert json.load(open(path)) == {"b": 2}
    assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_manifest_then_completed(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("hello")
    model = tmp_path / "m.npz"
    params_io.save_params(str(model), {"w": np.ones(3)})
    assert not outputs.is_complete(str(tmp_path))
    manifest = outputs.write_manifest(str(tmp_path), workload="t", config={"x": 1},
                                      inputs=[str(tmp_path / "*.txt")], model_path=str(model),
                                      counts={"records": 3})
    assert outputs.is_complete(str(tmp_path))
    assert manifest["inputs"]["num_files"] == 1
    assert manifest["inputs"]["files"][0]["sha256"] == fileio.file_sha256(str(data))
    assert manifest["model"]["sha256"] == fileio.file_sha256(str(model))
    assert manifest["config_sha256"] == outputs.config_sha256({"x": 1})
    # COMPLETED is written after the manifest
    assert os.path.getmtime(tmp_path / "COMPLETED") >= os.path.getmtime(tmp_path / "manifest.json")


def test_finalize_output_counts_in_pipeline_and_writes_dead_letters(tmp_path):
    out = str(tmp_path)
    with TestPipeline() as p:
        good = p | "Good" >> beam.Create(["a", "b", "c"])
        dead = p | "Dead" >> beam.Create([DeadLetter("k1", "read", "corrupt", "bad header"),
                                          DeadLetter("k2", "read", "corrupt")])
        written = outputs.WriteDeadLetters(out)
        files = dead | written
        _ = {"records": good, "dead_letter_files": files, "dead_letters": dead} | outputs.FinalizeOutput(
            out, workload="test", config={"k": "v"})
    manifest = json.load(open(tmp_path / "manifest.json"))
    assert manifest["counts"] == {"dead_letter_files": 1, "dead_letters": 2, "records": 3}
    lines = [json.loads(line) for f in glob.glob(f"{out}/errors/*.jsonl") for line in open(f)]
    assert sorted(d["key"] for d in lines) == ["k1", "k2"]
    assert {d["reason"] for d in lines} == {"corrupt"}
    assert outputs.is_complete(out)


@pytest.mark.parametrize("suffix", [".msgpack", ".npz"])
def test_params_round_trip(tmp_path, suffix):
    params = {"layer": {"kernel": np.arange(6.0).reshape(2, 3), "bias": np.zeros(3, np.float32)}}
    path = str(tmp_path / f"p{suffix}")
    params_io.save_params(path, params)
    loaded = params_io.load_params(path)
    np.testing.assert_array_equal(loaded["layer"]["kernel"], params["layer"]["kernel"])
    assert loaded["layer"]["bias"].dtype == np.float32


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}], dtype=object))
    path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="pickle"):
        params_io.load_params(str(path))
    with pytest.raises(ValueError, match="unsupported"):
        params_io.load_params(str(tmp_path / "weights.pkl"))


def test_remove_tree_deletes_a_directory_and_accepts_a_missing_one(tmp_path):
    from tessera.fileio import remove_tree  # pylint: disable=import-outside-toplevel
    nested = tmp_path / "frag" / "sub"
    nested.mkdir(parents=True)
    (nested / "a.frag").write_bytes(b"x")
    (tmp_path / "frag" / "b.frag").write_bytes(b"y")
    remove_tree(str(tmp_path / "frag"))
    assert not (tmp_path / "frag").exists()
    remove_tree(str(tmp_path / "frag"))  # already gone: no error
