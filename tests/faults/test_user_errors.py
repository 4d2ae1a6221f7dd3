"""Every user error a new user hit (issue list of fault cases) ends in one line on stderr and
exit status 2: no Beam stack trace, nothing written, no COMPLETED."""
from __future__ import annotations

import importlib
import json

import pytest
import yaml

from tessera.transforms.mcd import scan as mcd_scan
from tests.fixtures.mixture_synth import distinct_image, encode, write_jsonl

TIF = "tests/data/real/rotterdam_pan1.tif"
MODULES = {"buildings": "buildings", "mcd-split": "mcd_split", "mcd-stats": "mcd_stats",
           "label": "label", "cnn-zoo": "cnn_zoo", "zoo-predict": "zoo_predict",
           "mixture": "mixture", "buildings-eval": "buildings_eval"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    (root / "a_file").write_text("not a directory")
    (root / "img.png").write_bytes(encode(distinct_image(1, 32)))
    write_jsonl(str(root / "src.jsonl"), [{"id": f"r{i}", "image": encode(distinct_image(i, 32)),
                                          "suffix": f"text {i}"} for i in range(4)])
    (root / "mix.yaml").write_text(yaml.safe_dump({
        "name": "m", "num_shards": 1, "total_examples": 4, "format": "tfrecord",
        "sources": [{"name": "s", "path": str(root / "src.jsonl"), "format": "jsonl", "weight": 1.0}]}))
    bad = [{"input": "x", "output": "y"}, {"input": "jump", "output": "I_JUMP", "derivation": [7]}]
    (root / "no_valid.jsonl").write_text("{not json\n" + "\n".join(json.dumps(b) for b in bad) + "\n")
    (root / "scan.jsonl").write_text(
        "\n".join(json.dumps(ex) for ex in list(mcd_scan.examples())[:40]) + "\n")
    (root / "split_bad.json").write_text("{trainIdxs: oops")
    (root / "split_range.json").write_text(json.dumps({"trainIdxs": [0, 1], "testIdxs": [99999]}))
    (root / "split_shape.json").write_text(json.dumps({"trainIdxs": ["a"], "testIdxs": [1]}))
    return root


def _cases(r):
    """(workload, argv, what the one line must say) for every case of the fault list."""
    out, afile = str(r / "out"), str(r / "a_file")
    return [
        # an output path that is a file, for every workload
        ("buildings", ["--input", TIF, "--output", afile], "is a file; give a directory"),
        ("mcd-split", ["--dataset", "scan", "--output", afile], "is a file; give a directory"),
        ("label", ["--input", str(r / "img.png"), "--output", afile, "--model", "ocr"], "is a file"),
        ("cnn-zoo", ["--dataset", "digits", "--num-networks", "1", "--output", afile], "is a file"),
        ("mixture", ["--config", str(r / "mix.yaml"), "--output", afile], "is a file"),
        # empty or missing input globs
        ("mcd-split", ["--dataset", "/nonexistent/*.jsonl", "--output", out], "--dataset: '/nonexistent/*.jsonl' matches no file"),
        ("mcd-stats", ["--split", str(r / "split_range.json"), "--dataset", "/nonexistent/*.jsonl"], "matches no file"),
        ("mcd-stats", ["--split", str(r / "split_range.json"), "--examples", str(r / "none*.jsonl")], "--examples"),
        ("label", ["--input", "/nonexistent/*.png", "--output", out, "--model", "ocr"], "--input: '/nonexistent/*.png' matches no file"),
        # an input with zero valid examples
        ("mcd-split", ["--dataset", str(r / "no_valid.jsonl"), "--output", str(r / "novalid")], "no valid example to split"),
        # values outside what is allowed
        ("buildings", ["--input", TIF, "--output", out, "--tile-size", "500"], "multiple of 16"),
        ("buildings", ["--input", TIF, "--output", out, "--batch-size", "-1"], "--batch-size must be >= 1"),
        ("buildings", ["--input", TIF, "--output", out, "--threshold", "1.5"], "--threshold must be > 0 and < 1"),
        ("buildings", ["--input", TIF, "--output", out, "--model", "/nonexistent.msgpack"], "/nonexistent.msgpack does not exist"),
        ("mcd-split", ["--dataset", "scan", "--output", out, "--max-atom-divergence", "-1"], "--max-atom-divergence must be >= 0"),
        ("label", ["--input", str(r / "img.png"), "--output", out, "--model", "yolo"], "unknown model 'yolo'; expected one of"),
        ("label", ["--input", str(r / "img.png"), "--output", out, "--model", "savedmodel:/nonexistent"], "/nonexistent/saved_model.pb does not exist"),
        ("label", ["--input", str(r / "img.png"), "--output", out, "--model", "ocr", "--max-pixels", "-5"], "--max-pixels must be >= 1"),
        ("label", ["--input", str(r / "img.png"), "--output", out, "--model", "ocr", "--batch-size", "0"], "--batch-size must be >= 1"),
        ("buildings-eval", ["--predictions", "/nonexistent", "--labels", str(r / "a_file")], "--predictions '/nonexistent'"),
        # malformed or out-of-range split files
        ("mcd-stats", ["--split", str(r / "split_bad.json"), "--dataset", "scan"], "is not JSON"),
        ("mcd-stats", ["--split", str(r / "split_shape.json"), "--dataset", "scan"], "trainIdxs in"),
        ("mcd-stats", ["--split", str(r / "split_range.json"), "--dataset", str(r / "scan.jsonl")], "1 indices have no example"),
    ]


CASE_IDS = [f"{w}-{i}" for i, (w, _, _) in enumerate(_cases(__import__("pathlib").Path("/x")))]


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_user_error_is_one_line_and_exit_2(index, inputs, capsys):
    workload, argv, says = _cases(inputs)[index]
    main = importlib.import_module(f"tessera.pipelines.{MODULES[workload]}").main
    code = main(argv)
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if " INFO " not in line and " WARNING " not in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"tessera {workload}: "), err
    assert says in lines[0] and "Traceback" not in err
    assert not (inputs / "out" / "COMPLETED").exists()
