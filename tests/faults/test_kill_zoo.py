"""kill -9 `tessera cnn-zoo` at 3 random moments, then --resume: the release files are
byte-identical to an uninterrupted run's and COMPLETED appears only over a consistent directory."""
from __future__ import annotations

import gzip

from tessera.pipelines import cnn_zoo, common
from tests.faults import killing
from tests.pipelines.test_zoo import SEED


def test_cnn_zoo_killed_three_times_resumes_to_identical_release(tmp_path, monkeypatch, capsys):
    flags = ["--dataset", "digits", "--num-networks", "3", "--epochs", "1", "--population", "1",
             "--seed", str(SEED)]
    ref_out, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    ref = killing.run_reference(killing.command("cnn_zoo", [*flags, "--output", ref_out]), ref_out)
    first = killing.command("cnn_zoo", [*flags, "--output", out])
    moments = killing.kill_three_times_then_finish(first, first + ["--resume"], out, ref, "cnn-zoo")
    killing.check_consistent(out, [*cnn_zoo.OUTPUT.owned[:5], "shards/**", "errors/**"])
    for name in ("weights.npy", "index.parquet", "layout.csv", "dataset.json"):
        assert killing.read_bytes(out, name) == killing.read_bytes(ref_out, name), (name, moments)
    assert (gzip.decompress(killing.read_bytes(out, "metrics.csv.gz")["metrics.csv.gz"])
            == gzip.decompress(killing.read_bytes(ref_out, "metrics.csv.gz")["metrics.csv.gz"]))
    runs = []
    monkeypatch.setattr(common, "run_pipeline", lambda *a: runs.append(a))
    assert cnn_zoo.main([*flags, "--output", out]) == 0 and runs == []  # same command: skipped
    capsys.readouterr()
    assert cnn_zoo.main([*flags, "--output", out, "--epochs", "2"]) == 2 and runs == []
    assert "differs in: epochs" in capsys.readouterr().err
