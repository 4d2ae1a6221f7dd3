"""End to end: mcd-split on a small JSONL (with bad lines), mcd-stats on its output, size errors."""
import json
import os

import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from tessera.pipelines import mcd_split
from tessera.pipelines import mcd_stats
from tessera.pipelines import scan_generate
from tessera.transforms.mcd import divergence as dv
from tessera.transforms.mcd import scan as mcd_scan
from tessera.transforms.mcd.config import McdSplitConfig, McdStatsConfig, ScanGenerateConfig


def _small_dataset(path):
    examples = [ex for i, ex in enumerate(mcd_scan.examples()) if i % 67 == 0]  # 313 examples
    lines = [json.dumps(ex) for ex in examples]
    lines.insert(5, "{not json")
    lines.insert(9, json.dumps({"input": "jump", "output": "I_JUMP"}))  # no derivation
    lines.insert(12, json.dumps({"input": "x", "output": "y", "derivation": [7]}))
    lines.append(json.dumps({"input": "a b", "output": "A B", "atoms": ["a", "b"],
                             "compounds": {"a b": 1.0}}))  # precomputed atoms and compounds
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def _config(dataset, out, **kw):
    settings = {"max_compound_size": 3, "candidates_per_step": 128, "restarts": 1, "swap_steps": 300}
    return McdSplitConfig(dataset=str(dataset), output=str(out), **{**settings, **kw})


def _dead_letters(out):
    letters = []
    for name in os.listdir(out / "errors"):
        letters += [json.loads(line) for line in (out / "errors" / name).read_text().splitlines()]
    return letters


def test_mcd_split_end_to_end(tmp_path):
    data = tmp_path / "data.jsonl"
    n_lines = _small_dataset(data)
    out = tmp_path / "mcd"
    with TestPipeline() as p:
        mcd_split.build(p, _config(data, out))
    assert (out / "COMPLETED").exists()
    split = json.loads((out / "split.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    n_good = n_lines - 3
    assert stats["num_examples"] == n_good
    assert [len(split[k]) for k in ("trainIdxs", "devIdxs", "testIdxs")] == [
        round(0.4 * n_good), round(0.05 * n_good), round(0.05 * n_good)]
    all_idx = split["trainIdxs"] + split["devIdxs"] + split["testIdxs"]
    assert len(set(all_idx)) == len(all_idx)
    assert {5, 9, 12}.isdisjoint(all_idx)  # bad lines are never in a split
    # examples.jsonl lets anyone recompute the divergences
    records = {r["index"]: r for r in map(json.loads, (out / "examples.jsonl").read_text().splitlines())}
    assert len(records) == n_good
    atoms = {i: r["atoms"] for i, r in records.items()}
    comps = {i: r["compounds"] for i, r in records.items()}
    d_c = dv.compound_divergence([comps[i] for i in split["trainIdxs"]], [comps[i] for i in split["testIdxs"]])
    d_a = dv.atom_divergence([atoms[i] for i in split["trainIdxs"]], [atoms[i] for i in split["testIdxs"]])
    assert stats["train_test"]["compound_divergence"] == pytest.approx(d_c)
    assert stats["train_test"]["atom_divergence"] == pytest.approx(d_a)
    assert (out / "divergence_trajectory.png").read_bytes()[:4] == b"\x89PNG"
    reasons = sorted(letter["reason"] for letter in _dead_letters(out))
    assert reasons == ["bad_derivation", "malformed_json", "no_derivation"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["dead_letters"] == 3

    # the random baseline of the same sizes diverges far less
    rand_out = tmp_path / "random"
    with TestPipeline() as p:
        mcd_split.build(p, _config(data, rand_out, random_baseline=True))
    rand = json.loads((rand_out / "stats.json").read_text())
    assert rand["sizes"] == stats["sizes"]
    assert rand["train_test"]["compound_divergence"] < stats["train_test"]["compound_divergence"] - 0.2

    # mcd-stats recomputes the same numbers from the split file
    stats_path = tmp_path / "recomputed.json"
    with TestPipeline() as p:
        mcd_stats.build(p, McdStatsConfig(split=str(out / "split.json"), examples=str(out / "examples.jsonl"),
                                          output=str(stats_path), max_compound_size=3))
    again = json.loads(stats_path.read_text())
    assert again["train_test"]["compound_divergence"] == pytest.approx(d_c)
    with TestPipeline() as p:  # and from the raw data set, re-extracted
        mcd_stats.build(p, McdStatsConfig(split=str(out / "split.json"), dataset=str(data),
                                          output=str(stats_path), max_compound_size=3))
    assert json.loads(stats_path.read_text())["train_test"]["compound_divergence"] == pytest.approx(d_c)


@pytest.mark.parametrize("flags, message", [
    (["--train", "0.8", "--dev", "0.2", "--test", "0.1"], "> 1"),
    (["--train", "0"], "fraction"),
    (["--max-atom-divergence", "-1"], "--max-atom-divergence must be >= 0 and <= 1"),
    (["--restarts", "0"], "--restarts must be >= 1"),
    (["--target-compound-divergence", "1.5"], "--target-compound-divergence must be"),
    (["--max-compound-size", "1"], "--max-compound-size must be >= 2"),
])
def test_impossible_sizes_fail_fast(tmp_path, capsys, flags, message):
    code = mcd_split.main(["--dataset", "scan", "--output", str(tmp_path / "o"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_too_few_examples_fail_with_a_clear_message(tmp_path):
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(json.dumps(ex) for ex in list(mcd_scan.examples())[:5]) + "\n")
    with pytest.raises(Exception, match="empty set"):
        with TestPipeline() as p:
            mcd_split.build(p, _config(data, tmp_path / "o"))
    assert not (tmp_path / "o" / "COMPLETED").exists()


def test_scan_generate_writes_official_format(tmp_path):
    out = tmp_path / "tasks.txt"
    config = ScanGenerateConfig(output=str(out))
    with TestPipeline() as p:
        scan_generate.build(p, config)
    lines = out.read_text().splitlines()
    assert len(lines) == 20910
    assert lines[0].startswith("IN: ") and " OUT: " in lines[0]
    assert "IN: jump around left twice OUT: " + " ".join(["I_TURN_LEFT I_JUMP"] * 8) in lines
    records = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(20910))
    assert all(isinstance(r["derivation"], list) for r in records[:100])
    assert (tmp_path / "COMPLETED").exists()
