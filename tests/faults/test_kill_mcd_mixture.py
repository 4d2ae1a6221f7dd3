"""kill -9 `tessera mcd-split` and `tessera mixture` at 3 random moments, then rerun the same
command: the unfinished run's files are cleared and the outputs are byte-identical to an
uninterrupted run's; COMPLETED appears only over a consistent directory."""
from __future__ import annotations

import json
import os

import yaml

from tessera.pipelines import common, mcd_split, mixture
from tessera.transforms.mcd import scan as mcd_scan
from tests.faults import killing
from tests.pipelines.test_mixture import _config as mixture_config
from tests.pipelines.test_mixture import _make_sources

MCD_FLAGS = ["--max-compound-size", "3", "--candidates-per-step", "128", "--restarts", "1",
             "--swap-steps", "300"]


def test_mcd_split_killed_three_times_reruns_to_identical_files(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data.jsonl"
    examples = [ex for i, ex in enumerate(mcd_scan.examples()) if i % 67 == 0]
    data.write_text("\n".join(json.dumps(ex) for ex in examples) + "\n{not json\n")
    flags = ["--dataset", str(data), *MCD_FLAGS]
    ref_out, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    ref = killing.run_reference(killing.command("mcd_split", [*flags, "--output", ref_out]), ref_out)
    cmd = killing.command("mcd_split", [*flags, "--output", out])
    moments = killing.kill_three_times_then_finish(cmd, cmd, out, ref, "mcd-split")
    killing.check_consistent(out, [*mcd_split.mcd_split.OUTPUT_FILES, "errors/**"])
    for name in ("split.json", "examples.jsonl"):
        assert killing.read_bytes(out, name) == killing.read_bytes(ref_out, name), (name, moments)
    assert (killing.jsonl_records(out, "errors/*.jsonl", ("key", "reason"))
            == killing.jsonl_records(ref_out, "errors/*.jsonl", ("key", "reason")))
    killing.check_rerun_semantics(mcd_split.main, [*flags, "--output", out], ["--seed", "1"], monkeypatch, capsys)
    monkeypatch.undo()
    # --overwrite with a run that then fails: the old COMPLETED and manifest (which counted other
    # dead letters) must not stay beside the new errors/.
    bad = tmp_path / "no_valid.jsonl"
    bad.write_text('{not json\n{"input": "x", "output": "y"}\n')
    assert mcd_split.main(["--dataset", str(bad), *MCD_FLAGS, "--output", out, "--overwrite"]) == 2
    assert not os.path.exists(os.path.join(out, "COMPLETED"))
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    assert not os.path.exists(os.path.join(out, "split.json"))


def _records_in_glob(out: str) -> int:
    """What the README's tf.data glob reads from the output directory."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{out}/mixture-*.tfrecord")))


def test_mixture_killed_three_times_reruns_to_identical_shards(tmp_path, monkeypatch, capsys):
    root = tmp_path / "in"
    _make_sources(str(root))
    cfg = mixture_config(str(root))
    cfg["num_shards"] = 4
    (root / "mix.yaml").write_text(yaml.safe_dump(cfg))
    ref_out, out = str(tmp_path / "ref"), str(tmp_path / "killed")
    flags = ["--config", str(root / "mix.yaml")]
    ref = killing.run_reference(killing.command("mixture", [*flags, "--output", ref_out]), ref_out)
    cmd = killing.command("mixture", [*flags, "--output", out])
    moments = killing.kill_three_times_then_finish(cmd, cmd, out, ref, "mixture")
    killing.check_consistent(out, ["mixture-*", "stats.json", "rejected/**", "_fragments-*/**"])
    shards = killing.read_bytes(out, "mixture-*.tfrecord")
    assert shards == killing.read_bytes(ref_out, "mixture-*.tfrecord") and len(shards) == 4, moments
    assert killing.read_bytes(out, "stats.json") == killing.read_bytes(ref_out, "stats.json")
    assert (killing.jsonl_records(out, "rejected/*.jsonl", ("key", "reason"))
            == killing.jsonl_records(ref_out, "rejected/*.jsonl", ("key", "reason")))
    # Same mixture: skipped. Fewer shards: refused, then --overwrite leaves exactly the new ones
    # (the silent duplication this once caused: 4 old shards beside 2 new, 160 records read).
    runs = []
    real_run = common.run_pipeline
    monkeypatch.setattr(common, "run_pipeline", lambda *a: runs.append(a) or real_run(*a))
    assert mixture.main([*flags, "--output", out]) == 0 and runs == []
    cfg["num_shards"] = 2
    (root / "mix2.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert mixture.main(["--config", str(root / "mix2.yaml"), "--output", out]) == 2
    assert "differs in: num_shards" in capsys.readouterr().err
    assert mixture.main(["--config", str(root / "mix2.yaml"), "--output", out, "--overwrite"]) == 0
    assert sorted(killing.read_bytes(out, "mixture-*")) == [
        "mixture-00000-of-00002.tfrecord", "mixture-00001-of-00002.tfrecord"]
    assert _records_in_glob(out) == cfg["total_examples"]
    killing.check_consistent(out, ["mixture-*", "stats.json", "rejected/**", "_fragments-*/**"])
