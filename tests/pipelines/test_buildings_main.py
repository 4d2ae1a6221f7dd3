"""`tessera buildings` through `main()`: the shipped U-Net on a scene, flags -> config, COMPLETED."""
from __future__ import annotations

import dataclasses
import json

import pytest

from tessera.pipelines import buildings, buildings_eval, common, synth_scene
from tests.fixtures.buildings import rgb_scene, write_tif

LOCAL = ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene")
    assert synth_scene.main(["--output", str(out), "--seed", "9002", "--size", "384"]) == 0
    return out / "scene.tif", out / "buildings.geojson"


def test_shipped_unet_finds_the_buildings_and_a_finished_run_is_skipped(scene, tmp_path, monkeypatch):
    image, labels = scene
    out = tmp_path / "pred"
    assert buildings.main(["--input", str(image), "--output", str(out), *LOCAL]) == 0  # default --model
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["path"] == buildings.DEFAULT_MODEL
    assert manifest["counts"]["buildings"] > 5 and manifest["counts"]["dead_letters"] == 0
    scores_path = tmp_path / "eval.json"
    assert buildings_eval.main(["--predictions", str(out), "--labels", str(labels),
                                "--output-json", str(scores_path)]) == 0
    assert json.loads(scores_path.read_text())["f1"] > 0.9

    runs = []
    real_run = common.run_pipeline
    monkeypatch.setattr(common, "run_pipeline", lambda *a: runs.append(a) or real_run(*a))
    assert buildings.main(["--input", str(image), "--output", str(out), *LOCAL]) == 0
    assert runs == [] and json.loads((out / "manifest.json").read_text()) == manifest  # left alone
    assert buildings.main(["--input", str(image), "--output", str(out), "--overwrite", *LOCAL]) == 0
    assert len(runs) == 1
    redone = json.loads((out / "manifest.json").read_text())
    assert redone["created_at"] != manifest["created_at"] and redone["counts"] == manifest["counts"]


def test_every_flag_reaches_the_config(tmp_path, monkeypatch):
    tif = write_tif(tmp_path / "a.tif", rgb_scene(32, 32, []))
    (tmp_path / "m.msgpack").write_bytes(b"")  # --model must name a file that exists
    seen = []
    monkeypatch.setattr(common, "run_pipeline", lambda build, config, options: seen.append(config) or {})
    flags = {"--input": tif, "--output": str(tmp_path / "o"), "--model": str(tmp_path / "m.msgpack"),
             "--tile-size": "256", "--overlap": "32", "--threshold": "0.4", "--min-area": "9",
             "--min-core-area": "25", "--min-confidence": "0.3", "--format": "csv", "--s2-level": "8",
             "--batch-size": "4", "--accelerator": "type:nvidia-l4;count:1"}
    assert buildings.main([x for kv in flags.items() for x in kv]) == 0
    (config,) = seen
    expected = dict(input=tif, output=str(tmp_path / "o"), model=str(tmp_path / "m.msgpack"), tile_size=256,
                    overlap=32, threshold=0.4, min_area_m2=9.0, min_core_area_m2=25.0, min_confidence=0.3,
                    format="csv", s2_level=8, batch_size=4, accelerator="type:nvidia-l4;count:1")
    assert {k: getattr(config, k) for k in expected} == expected
    defaults = buildings.BuildingsConfig(input="i", output="o")
    assert all(getattr(defaults, k) != v for k, v in expected.items())  # each flag was really exercised
    unset = {f.name for f in dataclasses.fields(config)} - set(expected)
    assert {k: getattr(config, k) for k in unset} == {k: getattr(defaults, k) for k in unset}


def test_without_flags_the_config_defaults_hold(tmp_path, monkeypatch):
    tif = write_tif(tmp_path / "a.tif", rgb_scene(32, 32, []))
    seen = []
    monkeypatch.setattr(common, "run_pipeline", lambda build, config, options: seen.append(config) or {})
    assert buildings.main(["--input", tif, "--output", str(tmp_path / "o")]) == 0
    defaults = buildings.BuildingsConfig(input=tif, output=str(tmp_path / "o"))
    assert defaults.min_confidence is None and defaults.threshold is None  # "the model's": from the card
    card = json.loads(open(buildings.DEFAULT_MODEL[:-len(".msgpack")] + ".json").read())
    assert seen == [dataclasses.replace(defaults, min_confidence=card["min_confidence"],
                                        threshold=card.get("threshold", 0.5))]


def test_thresholds_default_to_the_model_cards(tmp_path, monkeypatch):
    """Thresholds belong to their model: the card beside the checkpoint names them, an explicit flag
    wins, no card means confidence 0 and pixel threshold 0.5, and a bad card is a one-line error."""
    tif = write_tif(tmp_path / "a.tif", rgb_scene(32, 32, []))
    model = tmp_path / "m.msgpack"
    model.write_bytes(b"")
    seen = []
    monkeypatch.setattr(common, "run_pipeline", lambda build, config, options: seen.append(config) or {})
    argv = ["--input", tif, "--output", str(tmp_path / "o"), "--model", str(model)]
    assert buildings.main(argv) == 0 and (seen[-1].min_confidence, seen[-1].threshold) == (0.0, 0.5)  # no card
    (tmp_path / "m.json").write_text(json.dumps({"min_confidence": 0.7}))
    assert buildings.main(argv) == 0 and (seen[-1].min_confidence, seen[-1].threshold) == (0.7, 0.5)
    (tmp_path / "m.json").write_text(json.dumps({"min_confidence": 0.7, "threshold": 0.35}))
    assert buildings.main(argv) == 0 and (seen[-1].min_confidence, seen[-1].threshold) == (0.7, 0.35)
    assert buildings.main(argv + ["--min-confidence", "0.2", "--threshold", "0.6"]) == 0
    assert (seen[-1].min_confidence, seen[-1].threshold) == (0.2, 0.6)
    for bad in ({"min_confidence": 7}, {"threshold": 1.0}, {"threshold": "0.4"}):
        (tmp_path / "m.json").write_text(json.dumps(bad))
        assert buildings.main(argv) == 2 and len(seen) == 4
