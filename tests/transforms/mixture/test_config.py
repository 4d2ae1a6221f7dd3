"""Mixture configs, the registry, and per-record validation (pure functions, literal fixtures)."""
from __future__ import annotations

import base64
import json

import pytest

from tessera.schemas.mixture import (FilterConfig, MixtureConfig, MixtureConfigError, SourceConfig,
                             mixture_config_from_dict)
from tessera.transforms.mixture.records import example_bytes, parse_example, parse_json_line, validate_row
from tessera.transforms.mixture.registry import MixtureRegistry, load_mixture, parse_mixture_text
from tests.fixtures.mixture_synth import distinct_image, encode

ISSUE_YAML = """
name: demo_mix
seed: 0
total_examples: 100000      # optional; default: every source once, scaled by weights
num_shards: 16
format: tfrecord            # tfrecord | parquet
sources:
  - {name: captions, path: "data/cap/*.parquet", format: parquet, weight: 0.5, prefix: "caption en"}
  - {name: ocr, path: "data/ocr/*.jsonl", format: jsonl, weight: 0.3, prefix: "ocr"}
  - {name: vqa, path: "data/vqa/*.tfrecord", format: tfrecord, weight: 0.2}
temperature: 1.0
filters: {min_side: 32, max_aspect: 4.0, max_suffix_chars: 2000}
dedup: {exact: true, near_image_hamming: 8}
decontaminate: {eval: ["data/eval/**/*.jpg"], near_image_hamming: 10}
"""


def _raw(**overrides):
    raw = {"name": "m", "sources": [
        {"name": "a", "path": "a/*.parquet", "format": "parquet", "weight": 0.6},
        {"name": "b", "path": "b/*.jsonl", "format": "jsonl", "weight": 0.4}]}
    raw.update(overrides)
    return raw


def test_issue_yaml_parses():
    cfg = parse_mixture_text(ISSUE_YAML)
    assert cfg.name == "demo_mix" and cfg.total_examples == 100000 and cfg.num_shards == 16
    assert [s.name for s in cfg.sources] == ["captions", "ocr", "vqa"]
    assert cfg.source("captions").prefix == "caption en" and cfg.source("vqa").prefix is None
    assert cfg.filters == FilterConfig(min_side=32, max_aspect=4.0, max_suffix_chars=2000)
    assert cfg.dedup.near_image_hamming == 8
    assert cfg.decontaminate.eval == ("data/eval/**/*.jpg",) and cfg.decontaminate.near_image_hamming == 10


def test_json_is_accepted_and_files_load(tmp_path):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(_raw()))
    assert load_mixture(str(path)).sources[1].weight == 0.4
    bad = tmp_path / "bad.json"
    bad.write_text("{'name': 1,")
    with pytest.raises(MixtureConfigError, match="not valid JSON"):
        load_mixture(str(bad))
    with pytest.raises(MixtureConfigError, match="does not exist"):
        load_mixture(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("weights,message", [
    ((0.5, 0.3), r"weights sum to 0.8, not 1"),
    ((0.9, 0.3), r"weights sum to 1.2, not 1"),
    ((-0.2, 1.2), r"source 'a': weight must be finite and >= 0"),
    ((0.0, 0.0), r"weights sum to 0"),
    ((float("nan"), 1.0), r"finite"),
    (("half", 0.5), r"weight must be a number"),
    ((0.5, None), r"weights given for some sources but not for \['b'\]"),
])
def test_bad_weights_are_clear_errors(weights, message):
    raw = _raw()
    for src, w in zip(raw["sources"], weights):
        src["weight"] = w
    with pytest.raises(MixtureConfigError, match=message):
        mixture_config_from_dict(raw)


def test_normalize_weights_and_omitted_weights():
    raw = _raw(normalize_weights=True)
    raw["sources"][0]["weight"], raw["sources"][1]["weight"] = 3, 1
    assert mixture_config_from_dict(raw).sources[0].weight == 3
    for s in raw["sources"]:
        del s["weight"]
    assert all(s.weight is None for s in mixture_config_from_dict(_raw(sources=raw["sources"])).sources)


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r["sources"][0].pop("path"), r"sources\[0\] is missing field\(s\) \['path'\]"),
    (lambda r: r["sources"][1].update(format="csv"), r"format 'csv' is not one of"),
    (lambda r: r["sources"][1].update(name="a"), r"duplicate source names \['a'\]"),
    (lambda r: r["sources"][0].update(colour="red"), r"unknown field\(s\) \['colour'\]"),
    (lambda r: r.update(num_shards=0), r"num_shards must be >= 1"),
    (lambda r: r.update(format="csv"), r"format 'csv' is not one of \('tfrecord', 'parquet'\)"),
    (lambda r: r.update(sources=[]), r"non-empty 'sources'"),
    (lambda r: r.update(dedup={"near_image_hamming": 40}), r"near_image_hamming must be <= 31"),
    (lambda r: r.update(filters={"min_side": -1}), r"filters.min_side must be >= 0"),
    (lambda r: r.pop("name"), r"missing 1 required positional argument: 'name'"),
])
def test_bad_configs_name_the_field(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(MixtureConfigError, match=message):
        mixture_config_from_dict(raw)


def test_registry_rejects_duplicates_and_wrong_types():
    name = "test_registry_mix"
    MixtureRegistry.remove(name)
    try:
        cfg = MixtureRegistry.add(_raw(name=name))
        assert isinstance(cfg, MixtureConfig) and load_mixture(f"registry:{name}") is cfg
        with pytest.raises(ValueError, match="already registered"):
            MixtureRegistry.add(_raw(name=name))
        with pytest.raises(TypeError, match="expects a MixtureConfig"):
            MixtureRegistry.add(["not", "a", "mixture"])
        with pytest.raises(KeyError, match="no mixture named 'nope'"):
            MixtureRegistry.get("nope")
    finally:
        MixtureRegistry.remove(name)


def _no_files(path):
    raise OSError(f"no such file {path}")


SOURCE = SourceConfig(name="s", path="x", format="jsonl", weight=1.0, prefix="caption en")
PNG = encode(distinct_image(0, 40))


def test_validate_row_accepts_bytes_and_base64():
    record, sha, phash = validate_row({"id": 7, "image": PNG, "suffix": "a cat"}, SOURCE, FilterConfig(), _no_files)
    assert (record.id, record.prefix, record.suffix, record.source) == ("7", "caption en", "a cat", "s")
    b64 = {"id": "7", "image": base64.b64encode(PNG).decode(), "suffix": "a cat", "prefix": "own"}
    record2, sha2, phash2 = validate_row(b64, SOURCE, FilterConfig(), _no_files)
    assert record2.prefix == "own" and phash2 == phash and sha2 != sha  # prefix is part of the content


@pytest.mark.parametrize("row,filters,reason,detail", [
    ({"image": PNG, "suffix": "x"}, FilterConfig(), "missing_field", "id"),
    ({"id": "1", "image": PNG}, FilterConfig(), "missing_field", "suffix"),
    ({"id": "1", "suffix": "x"}, FilterConfig(), "missing_field", "image or image_path"),
    ({"id": "1", "image": "%%%", "suffix": "x"}, FilterConfig(), "unreadable_image", "base64"),
    ({"id": "1", "image_path": "gone.png", "suffix": "x"}, FilterConfig(), "unreadable_image", "gone.png"),
    ({"id": "1", "image": b"GIF89a...", "suffix": "x"}, FilterConfig(), "undecodable_image", "undecodable"),
    ({"id": "1", "image": encode(distinct_image(2, 40), "JPEG")[:-60], "suffix": "x"}, FilterConfig(),
     "undecodable_image", "truncated"),
    ({"id": "1", "image": PNG[:-30], "suffix": "x"}, FilterConfig(), "undecodable_image", "truncated"),
    ({"id": "1", "image": PNG, "suffix": "x"}, FilterConfig(min_side=64), "too_small", "40x40 < 64"),
    ({"id": "1", "image": encode(distinct_image(1, 40).resize((200, 20))), "suffix": "x"},
     FilterConfig(max_aspect=4.0), "bad_aspect", "200x20"),
    ({"id": "1", "image": PNG, "suffix": "x" * 11}, FilterConfig(max_suffix_chars=10), "suffix_too_long", "11 > 10"),
])
def test_validate_row_rejections(row, filters, reason, detail):
    letter = validate_row(row, SOURCE, filters, _no_files)
    assert letter.reason == reason and detail in letter.detail and letter.key.startswith("s/")


def test_missing_prefix_without_source_default():
    source = SourceConfig(name="v", path="x", format="tfrecord", weight=1.0)
    letter = validate_row({"id": "1", "image": PNG, "suffix": "x"}, source, FilterConfig(), _no_files)
    assert letter.reason == "missing_field" and "prefix" in letter.detail


def test_parse_helpers():
    assert parse_json_line("s", "f.jsonl", '{"id": 1}') == {"id": 1, "_file": "f.jsonl"}
    assert parse_json_line("s", "f.jsonl", "[1, 2]").reason == "bad_json"
    assert parse_json_line("s", "f.jsonl", "{oops").reason == "bad_json"
    assert parse_example("s", b"\x0a\x05garbage").reason == "bad_tfrecord"
    from tessera.schemas.mixture import MixtureRecord
    row = parse_example("s", example_bytes(MixtureRecord("i", b"img", "p", "q", "src")))
    assert (row["id"], row["image"], row["prefix"], row["suffix"]) == ("i", b"img", "p", "q")


def _prepare_outputs(source, elements) -> dict:
    """Runs PrepareFn by hand over `elements` (one bundle); outputs normalized so that how rows
    were batched does not show: every shuffled value with its tag and key, sorted."""
    import apache_beam as beam  # pylint: disable=import-outside-toplevel
    from tessera.transforms.mixture.prepare_stages import PrepareFn, unpack_metas, unpack_records  # pylint: disable=import-outside-toplevel
    fn = PrepareFn(source, FilterConfig(min_side=16), seed=0, rows_per_batch=8, max_items=40)
    fn.start_bundle()
    raw = []
    for element in elements:
        raw += list(fn.process(element) or [])
    raw += list(fn.finish_bundle())
    values, letters, read = [], [], 0
    for out in raw:
        tag = out.tag if isinstance(out, beam.pvalue.TaggedOutput) else "records"
        out = out.value if isinstance(out, beam.pvalue.TaggedOutput) else out
        out = getattr(out, "value", out)  # unwrap windowed values from finish_bundle
        if tag == "rejected":
            letters.append((out.key, out.reason))
        elif tag == PrepareFn.EVENTS:
            read += out[1]
        else:
            key, (_, batch) = out
            if tag == "records":  # records and metas travel packed
                batch = list(zip(*unpack_records(batch)))
            else:
                batch = unpack_metas(key[0], batch)
            values += [(tag, key, v) for v in batch]
    return {"values": sorted(values, key=repr), "letters": sorted(letters), "read": read}


def test_prepare_takes_arrow_tables_exactly_like_rows():
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    rows = [{"id": f"r{i}", "image": encode(distinct_image(i, 32)), "suffix": f"text {i}"} for i in range(30)]
    rows += [{"id": "bad", "image": b"\x89PNG nope", "suffix": "x"}, {"id": "tiny", "image": encode(distinct_image(1, 8)), "suffix": "x"},
             {"id": None, "image": PNG, "suffix": "x"}, {"id": "nosuffix", "image": PNG, "suffix": None}]
    table = pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("image", pa.binary()),
                                                          ("suffix", pa.string())]))
    source = SourceConfig(name="cap", path="x", format="parquet", weight=1.0, prefix="caption en")
    by_rows = _prepare_outputs(source, table.to_pylist())
    by_tables = _prepare_outputs(source, [table.slice(0, 13), table.slice(13)])  # two row groups
    assert by_tables == by_rows
    assert by_rows["read"] == len(rows) and len(by_rows["letters"]) == 4
    assert sum(tag == "records" for tag, _, _ in by_rows["values"]) == 30
