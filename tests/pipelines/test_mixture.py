"""End to end: `pipelines.mixture.build` on tiny generated sources in all three input formats.

Checks what the issue asks for on outputs read back with tf.data: exact per-source counts, the
prefix bound, repeats, nothing lost, the rejected reasons, byte-identical shards across runs and
across 1 vs 2 DirectRunner workers, and clear errors for bad configs.
"""
from __future__ import annotations

import collections
import filecmp
import glob
import json
import math
import os

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from tessera.pipelines.mixture import build, check_globs
from tessera.transforms.mixture.config import MixtureJobConfig
from tessera.schemas.mixture import TFRECORD_FEATURES, MixtureConfigError, MixtureRecord, mixture_config_from_dict
from tessera.transforms.mixture.records import tfrecord_bytes
from tests.fixtures.mixture_synth import distinct_image, encode, perturb, write_jsonl, write_parquet

N_CAP, N_OCR, N_VQA = 40, 12, 20
WEIGHTS = {"captions": 0.5, "ocr": 0.3, "vqa": 0.2}


def _make_sources(root: str) -> dict:
    """Three sources plus eval images; returns how many raw rows each source has."""
    imgs = [distinct_image(i, 32) for i in range(120)]
    cap = [{"id": f"c{i}", "image": encode(imgs[i]), "suffix": f"a photo number {i}"} for i in range(N_CAP)]
    cap.append(dict(cap[3]))                                                   # exact duplicate
    cap.append({"id": "c_near", "image": perturb(imgs[5], "jpeg", 5), "suffix": "near copy"})
    cap.append({"id": "c_bad", "image": b"\x89PNG not really", "suffix": "x"})  # undecodable
    cap.append({"id": "c_tiny", "image": encode(distinct_image(999, 8)), "suffix": "x"})  # < min_side
    cap.append({"id": "c_long", "image": encode(imgs[110]), "suffix": "y" * 500})       # suffix too long
    write_parquet(os.path.join(root, "cap", "part-0.parquet"), cap[:25])
    write_parquet(os.path.join(root, "cap", "part-1.parquet"), cap[25:])
    ocr = [{"id": f"o{i}", "image": encode(imgs[50 + i]), "suffix": f"TEXT {i}"} for i in range(N_OCR)]
    os.makedirs(os.path.join(root, "ocr", "img"), exist_ok=True)
    imgs[70].save(os.path.join(root, "ocr", "img", "o_path.png"))
    ocr.append({"id": "o_path", "image_path": "img/o_path.png", "suffix": "from a path"})
    ocr.append({"id": "o_contam", "image": perturb(imgs[100], "resize", 1), "suffix": "eval copy"})
    ocr.append({"id": "o_noimage", "suffix": "no image"})
    ocr.append({"id": "o_b64", "image": "***", "suffix": "bad base64"})
    write_jsonl(os.path.join(root, "ocr", "data.jsonl"), ocr)
    with open(os.path.join(root, "ocr", "data.jsonl"), "a") as f:
        f.write("{this is not json\n")
    vqa = [MixtureRecord(f"v{i}", encode(imgs[80 + i]), f"what is {i}?", f"answer {i}", "ignored")
           for i in range(N_VQA)]
    vqa.append(MixtureRecord("v_contam", encode(imgs[101]), "q?", "a", "ignored"))
    with open(os.path.join(root, "vqa.tfrecord"), "wb") as f:
        f.write(tfrecord_bytes(vqa))
    os.makedirs(os.path.join(root, "eval"), exist_ok=True)
    imgs[100].save(os.path.join(root, "eval", "e100.png"))
    imgs[101].save(os.path.join(root, "eval", "e101.jpg"), quality=95)
    return {"captions": len(cap), "ocr": len(ocr) + 1, "vqa": len(vqa)}


def _config(root: str, **overrides) -> dict:
    cfg = {
        "name": "test_mix", "seed": 3, "num_shards": 3, "format": "tfrecord", "total_examples": 90,
        "sources": [
            {"name": "captions", "path": f"{root}/cap/*.parquet", "format": "parquet",
             "weight": WEIGHTS["captions"], "prefix": "caption en"},
            {"name": "ocr", "path": f"{root}/ocr/*.jsonl", "format": "jsonl", "weight": WEIGHTS["ocr"],
             "prefix": "ocr"},
            {"name": "vqa", "path": f"{root}/vqa.tfrecord", "format": "tfrecord", "weight": WEIGHTS["vqa"],
             "near_dedup": False},
        ],
        "filters": {"min_side": 16, "max_aspect": 4.0, "max_suffix_chars": 200},
        "dedup": {"exact": True, "near_image_hamming": 8},
        "decontaminate": {"eval": [f"{root}/eval/*"], "near_image_hamming": 10},
    }
    cfg.update(overrides)
    return cfg


def _run(cfg: dict, out: str, options: list[str] | None = None) -> str:
    pipeline = TestPipeline(options=PipelineOptions(options or []))
    build(pipeline, MixtureJobConfig(mixture_config_from_dict(cfg), out))
    pipeline.run().wait_until_finish()
    return out


def _read_tfrecords(out: str) -> list[dict]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in TFRECORD_FEATURES}
    paths = sorted(glob.glob(os.path.join(out, "mixture-*.tfrecord")))
    rows = []
    for raw in tf.data.TFRecordDataset(paths):
        parsed = tf.io.parse_single_example(raw, spec)
        rows.append({k: parsed[k].numpy() for k in TFRECORD_FEATURES})
    return rows


def _rejected(out: str) -> list[dict]:
    lines = []
    for path in sorted(glob.glob(os.path.join(out, "rejected", "*.jsonl"))):
        with open(path) as f:
            lines += [json.loads(line) for line in f if line.strip()]
    return lines


def _shards(out: str) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "mixture-*")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mix_src"))
    raw_counts = _make_sources(root)
    cfg = _config(root)
    first = _run(cfg, str(tmp_path_factory.mktemp("out_a")))
    return {"root": root, "raw": raw_counts, "cfg": cfg, "out": first, "tmp": tmp_path_factory}


def test_exact_counts_and_prefix_bound_via_tf_data(runs):
    rows = _read_tfrecords(runs["out"])
    n = runs["cfg"]["total_examples"]
    assert len(rows) == n
    sources = [r["source"].decode() for r in rows]
    names = sorted(WEIGHTS)
    for name in names:
        assert abs(sources.count(name) - WEIGHTS[name] * n) <= 1, name
    lengths = np.arange(1, n + 1)
    for name in names:
        prefix_counts = np.cumsum([s == name for s in sources])
        assert np.abs(prefix_counts - WEIGHTS[name] * lengths).max() <= 2, name
    for r in rows:  # features round-trip as written
        assert r["image/encoded"][:4] == b"\x89PNG" and r["suffix"] and r["prefix"]
    assert {r["prefix"].decode() for r in rows if r["source"] == b"captions"} == {"caption en"}


def test_repeats_are_bounded_and_spread(runs):
    rows = _read_tfrecords(runs["out"])
    stats = json.load(open(os.path.join(runs["out"], "stats.json")))
    positions = collections.defaultdict(list)
    for i, r in enumerate(rows):
        positions[(r["source"], r["id"])].append(i)
    for name, s in stats["sources"].items():
        uses = [len(p) for (src, _), p in positions.items() if src.decode() == name]
        assert max(uses) <= math.ceil(s["share"] / s["kept"])
        assert sum(uses) == s["written"] and len(uses) == s["written_unique"]
    ocr = stats["sources"]["ocr"]
    assert ocr["share"] > ocr["kept"] and ocr["repeated"] == ocr["share"] - ocr["kept"]
    gaps = [b - a for (src, _), p in positions.items() if src == b"ocr" for a, b in zip(p, p[1:])]
    assert gaps and min(gaps) >= ocr["kept"]  # each pass spans the whole output


def test_nothing_lost_and_reasons(runs):
    stats = json.load(open(os.path.join(runs["out"], "stats.json")))
    rejected = _rejected(runs["out"])
    by_source = collections.Counter(r["key"].split("/", 1)[0] for r in rejected)
    for name, raw in runs["raw"].items():
        s = stats["sources"][name]
        assert s["read"] == raw
        assert s["read"] == s["written_unique"] + by_source[name], name
        assert s["balanced"]
    reasons = {r["key"]: r["reason"] for r in rejected}
    assert reasons["captions/c_bad"] == "undecodable_image"
    assert reasons["captions/c_tiny"] == "too_small"
    assert reasons["captions/c_long"] == "suffix_too_long"
    assert reasons["captions/c3"] == "duplicate"
    assert [reasons.get(k) for k in ("captions/c5", "captions/c_near")].count("near_duplicate") == 1
    assert reasons["ocr/o_contam"] == "contaminated" and reasons["vqa/v_contam"] == "contaminated"
    assert reasons["ocr/o_noimage"] == "missing_field" and reasons["ocr/o_b64"] == "unreadable_image"
    assert any(r["reason"] == "bad_json" for r in rejected)
    assert "ocr/o_path" not in reasons  # image_path relative to the JSONL file was read
    assert os.path.exists(os.path.join(runs["out"], "COMPLETED"))
    manifest = json.load(open(os.path.join(runs["out"], "manifest.json")))
    assert manifest["workload"] == "mixture" and manifest["config"]["name"] == "test_mix"


def test_same_config_twice_gives_identical_shards(runs):
    second = _run(runs["cfg"], str(runs["tmp"].mktemp("out_b")))
    names = _shards(runs["out"])
    assert names == _shards(second) and len(names) == 3
    match, mismatch, errors = filecmp.cmpfiles(runs["out"], second, names, shallow=False)
    assert not mismatch and not errors


def test_fragment_buffer_size_does_not_change_shards_and_fragments_are_removed(runs):
    out = str(runs["tmp"].mktemp("out_frag"))
    pipeline = TestPipeline()
    build(pipeline, MixtureJobConfig(mixture_config_from_dict(runs["cfg"]), out, fragment_buffer_bytes=1))
    pipeline.run().wait_until_finish()
    names = _shards(runs["out"])
    match, mismatch, errors = filecmp.cmpfiles(runs["out"], out, names, shallow=False)
    assert match == names and not mismatch and not errors
    for done in (out, runs["out"]):
        assert not glob.glob(os.path.join(done, "_fragments*")), os.listdir(done)
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["totals"]["written"] == runs["cfg"]["total_examples"]


def test_two_workers_give_identical_shards(runs):
    multi = _run(runs["cfg"], str(runs["tmp"].mktemp("out_mp")),
                 ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"])
    names = _shards(runs["out"])
    match, mismatch, errors = filecmp.cmpfiles(runs["out"], multi, names, shallow=False)
    assert match == names and not mismatch and not errors


def test_parquet_output_holds_the_same_records_in_the_same_order(runs):
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    out = _run({**runs["cfg"], "format": "parquet"}, str(runs["tmp"].mktemp("out_pq")))
    tables = [pq.read_table(os.path.join(out, p)) for p in _shards(out)]
    rows = [row for t in tables for row in t.to_pylist()]
    expected = _read_tfrecords(runs["out"])
    assert [(r["source"], r["id"], r["image"]) for r in rows] == [
        (e["source"].decode(), e["id"].decode(), e["image/encoded"]) for e in expected]


def test_glob_matching_nothing_is_a_clear_error(runs, tmp_path):
    cfg = _config(runs["root"])
    cfg["sources"][1] = {**cfg["sources"][1], "path": f"{runs['root']}/nope/*.jsonl"}
    with pytest.raises(MixtureConfigError, match="'ocr'.*matches no files"):
        check_globs(mixture_config_from_dict(cfg))
    cfg = _config(runs["root"], decontaminate={"eval": [f"{runs['root']}/missing/*.png"]})
    with pytest.raises(MixtureConfigError, match="matches no files"):
        build(TestPipeline(), MixtureJobConfig(mixture_config_from_dict(cfg), str(tmp_path)))


def test_weighted_source_with_no_surviving_records_fails_clearly(runs):
    from tessera.transforms.mixture.stages import SlotPlan  # pylint: disable=import-outside-toplevel
    mix = mixture_config_from_dict(_config(runs["root"]))
    with pytest.raises(ValueError, match=r"\['ocr'\] have a positive weight but no records"):
        SlotPlan(mix, {"captions": 10, "ocr": 0, "vqa": 5})
    with pytest.raises(ValueError, match="no records survived"):
        SlotPlan(mixture_config_from_dict(_config(runs["root"], total_examples=None)), {})


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
def test_shards_without_records_are_written_empty(runs, fmt):
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    out = _run({**runs["cfg"], "total_examples": 3, "num_shards": 6, "format": fmt},
               str(runs["tmp"].mktemp(f"out_empty_{fmt}")))
    names = _shards(out)
    assert len(names) == 6
    if fmt == "tfrecord":
        assert len(_read_tfrecords(out)) == 3
        assert sum(os.path.getsize(os.path.join(out, n)) == 0 for n in names) == 3
    else:
        sizes = [pq.read_table(os.path.join(out, n)).num_rows for n in names]
        assert sum(sizes) == 3 and sizes.count(0) == 3
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert os.path.exists(os.path.join(out, "COMPLETED")) and manifest["counts"]["shards"] == 6


def _tessera(*args, cwd=None, pythonpath=None):
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=pythonpath or "")
    exe = os.path.join(os.path.dirname(sys.executable), "tessera")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_registry_name_from_an_imported_module_gives_the_file_config_shards(runs, tmp_path):
    """`--config registry:NAME --module_import MODULE`: the module registers the mixture, the run
    writes the same shards as the same config given as a file."""
    module = tmp_path / "my_test_mixtures.py"
    module.write_text("from tessera.transforms.mixture.registry import MixtureRegistry\n"
                      f"MixtureRegistry.add({runs['cfg']!r})\n")
    out = str(tmp_path / "out")
    done = _tessera("mixture", "--config", f"registry:{runs['cfg']['name']}",
                    "--module_import", "my_test_mixtures", "--output", out, pythonpath=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert _shards(out) == _shards(runs["out"])
    for name in _shards(out):
        assert filecmp.cmp(os.path.join(out, name), os.path.join(runs["out"], name), shallow=False)


def test_unknown_registry_name_is_a_one_line_error(tmp_path):
    done = _tessera("mixture", "--config", "registry:no_such_mix", "--output", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "no mixture registered as 'no_such_mix'" in done.stderr
    assert "Traceback" not in done.stderr and "KeyError" not in done.stderr
