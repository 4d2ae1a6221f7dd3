"""`tessera label` end to end with the real OCR model: accounting, dead letters, --resume, Parquet."""
import glob
import io
import json
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from tests.fixtures.text_lines import cer, find_fonts, render_line
from tessera.config import to_dict
from tessera.pipelines import label
from tessera.transforms.core import output_dir
from tessera.schemas.labels import LABEL_SCHEMA
from tessera.schemas.records import DeadLetter
from tessera.transforms.label import input_stages as label_input_stages
from tessera.transforms.label import inputs as label_inputs
from tessera.transforms.label import stages as label_stages


def _png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def _text(i: int) -> str:
    return f"word {i:02d}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """18 rendered text lines (PNG and JPEG) + 1 garbage file + 1 truncated file = 10% bad."""
    root = tmp_path_factory.mktemp("corpus")
    font = find_fonts()[0]
    for i in range(18):
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        data = _png(render_line(_text(i), font, 22, seed_index=i), fmt)
        (root / f"line{i:02d}.{fmt.lower()}").write_bytes(data)
    (root / "line90.png").write_bytes(b"not an image")
    good = (root / "line01.png").read_bytes()
    (root / "line91.png").write_bytes(good[: len(good) // 2])
    return root


def _run(config):
    pipeline = TestPipeline()
    label.build(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {}
    for c in result.metrics().query(MetricsFilter())["counters"]:
        name = f"{c.key.metric.namespace}:{c.key.metric.name}"
        counters[name] = counters.get(name, 0) + c.committed
    return counters


def _labels(out):
    files = sorted(glob.glob(os.path.join(out, "labels", "*.parquet")))
    table = pa.concat_tables([pq.read_table(f) for f in files]) if files else LABEL_SCHEMA.empty_table()
    return table


def _errors(out):
    rows = []
    for f in glob.glob(os.path.join(out, "errors", "*.jsonl")):
        rows += [json.loads(line) for line in open(f) if line.strip()]
    return rows


def _config(inputs, out, **kwargs):
    defaults = dict(model="ocr", batch_size=4, bucket_shards=2, rows_per_shard=3, run_id="t")
    return label.LabelConfig(inputs=tuple(inputs), output=str(out), **{**defaults, **kwargs})


def test_corpus_with_corrupt_files_is_fully_accounted(corpus, tmp_path):
    out = tmp_path / "out"
    counters = _run(_config([str(corpus / "*")], out))
    table = _labels(str(out))
    assert table.schema.equals(LABEL_SCHEMA)
    keys = table.column("key").to_pylist()
    errors = _errors(str(out))
    assert len(keys) == len(set(keys)) == 18
    assert sorted((os.path.basename(e["key"]), e["reason"]) for e in errors) == [
        ("line90.png", "undecodable"), ("line91.png", "truncated")]
    assert len(keys) + len(errors) == 20 == counters["label:inputs"]
    assert counters["label:labelled"] == 18 and counters["dead_letters:total"] == 2
    texts = dict(zip(keys, table.column("text").to_pylist()))
    hyps = [texts[str(corpus / f"line{i:02d}.{'jpeg' if i % 3 == 0 else 'png'}")] for i in range(18)]
    assert cer([_text(i) for i in range(18)], hyps) <= 0.1, hyps  # right text under the right key
    assert all(row["error"] is None and row["boxes"] and row["embedding"] is None
               for row in table.to_pylist())
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "COMPLETED").exists() and manifest["counts"]["labelled"] == 18
    assert manifest["counts"]["errors"] == 2


def test_resume_after_killed_run_has_no_duplicates_and_no_gaps(corpus, tmp_path):
    out = tmp_path / "out"
    first = _run(_config([str(corpus / "line0*")], out, run_id="a"))  # 10 good files
    assert first["label:labelled"] == 10
    # Simulate a run killed before the end: no COMPLETED, and one written shard lost.
    os.remove(out / "COMPLETED")
    shards = sorted(glob.glob(str(out / "labels" / "*.parquet")))
    assert len(shards) >= 2
    lost = pq.read_table(shards[0]).num_rows
    os.remove(shards[0])
    with pytest.raises(output_dir.OutputDirError, match="--resume"):  # refused without it
        output_dir.prepare(str(out), label.OUTPUT, to_dict(_config([str(corpus / "*")], out)))
    second = _run(_config([str(corpus / "*")], out, resume=True, run_id="b"))
    assert second["label:skipped_done"] == 10 - lost  # nothing finished is redone
    assert second["label:labelled"] == 8 + lost
    keys = _labels(str(out)).column("key").to_pylist()
    errors = [e["key"] for e in _errors(str(out))]
    assert len(keys) == len(set(keys)) == 18
    assert not set(keys) & set(errors) and len(errors) == 2
    assert sorted(keys + errors) == sorted(glob.glob(str(corpus / "*")))
    # Resuming a finished directory does nothing and loses nothing.
    third = _run(_config([str(corpus / "*")], out, resume=True, run_id="c"))
    assert third["label:skipped_done"] == 20 and third.get("label:labelled", 0) == 0
    assert len(_labels(str(out))) == 18 and len(_errors(str(out))) == 2


def test_resume_with_the_same_run_id_keeps_the_earlier_dead_letters(corpus, tmp_path):
    """A resumed run skips keys already dead-lettered, so its own error file must not replace
    the earlier one, even when both runs were given the same --run-id."""
    out = tmp_path / "out"
    _run(_config([str(corpus / "*")], out, run_id="same"))
    os.remove(out / "COMPLETED")  # killed after its error file was written
    before = sorted(e["key"] for e in _errors(str(out)))
    second = _run(_config([str(corpus / "*")], out, resume=True, run_id="same"))
    assert second["label:skipped_done"] == 20 and len(before) == 2
    assert sorted(e["key"] for e in _errors(str(out))) == before


def test_parquet_input_with_ids_duplicates_and_missing_images(tmp_path):
    font = find_fonts()[0]
    rows = [{"id": "a", "image": _png(render_line("alpha 1", font, 22))},
            {"id": "b", "image": _png(render_line("beta 2", font, 22))},
            {"id": "a", "image": _png(render_line("alpha 1", font, 22))},
            {"id": "c", "image": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "images.parquet")
    out = tmp_path / "out"
    counters = _run(_config([str(tmp_path / "images.parquet")], out))
    table = _labels(str(out))
    assert sorted(table.column("key").to_pylist()) == ["a", "b"]
    assert sorted((e["key"], e["reason"]) for e in _errors(str(out))) == [
        ("a", "duplicate_key"), ("c", "no_image")]
    assert counters["label:inputs"] == 4


def test_record_to_keyed_bytes_variants():
    f = label_inputs.record_to_keyed_bytes
    assert f({"id": "x", "image": b"\x01"}) == ("x", b"\x01")
    assert f({"image/encoded": [b"\x02"], "image/id": [b"y"]}) == ("y", b"\x02")
    assert f({"image": {"bytes": b"\x03", "path": "p"}, "key": 7}) == ("7", b"\x03")
    key, data = f({"jpeg": b"\x04"})
    assert data == b"\x04" and key.startswith("sha1:")
    assert f({"id": "z"}) == ("z", None)
    assert label_inputs.detect_format("gs://b/x-*.parquet") == "parquet"
    assert label_inputs.detect_format("out/mix.tfrecord-*") == "tfrecord"
    assert label_inputs.detect_format("photos/*.jpg") == "images"


def test_skip_done_keys_anti_join():
    with TestPipeline() as p:
        inputs = p | "In" >> beam.Create([("a", 1), ("b", 2), ("c", 3), ("c", 4)])
        done = p | "Done" >> beam.Create(["b", "zzz"])
        joined = inputs | label_input_stages.SkipDoneKeys(done)
        assert_that(joined.main, equal_to([("a", 1), ("c", 3)]), label="main")
        assert_that(joined.dead | beam.Map(lambda d: (d.key, d.reason)),
                    equal_to([("c", "duplicate_key")]), label="dead")


def test_bucket_keys_and_error_reasons():
    assert label_stages.bucket_key("k", 40, 300, 4).split("/")[0] == "64x512"
    shards = {label_stages.bucket_key(f"/data/img{i:02d}.png", 40, 300, 8) for i in range(40)}
    assert len(shards) >= 6  # paths differing in one digit still spread over shards
    assert label_stages.error_reason("ocr_failed: RuntimeError: x") == "ocr_failed"
    assert label_stages.error_reason("something went wrong") == "model_error"
    assert label_stages.shard_name(["b", "a"]) == label_stages.shard_name(["a", "b"])
    assert isinstance(DeadLetter("k", "s", "r").to_dict(), dict)


def test_paligemma_tiny_checkpoint_through_the_pipeline(corpus, tmp_path):
    """`--model paligemma:DIR` with a tiny big_vision-format checkpoint + trained tokenizer."""
    from tessera.models.paligemma import configs
    from tests.fixtures.paligemma import train_tiny_tokenizer, write_tiny_checkpoint
    from tessera.models.paligemma.tokenizer import PaliGemmaTokenizer
    model_dir = tmp_path / "pg"
    model_dir.mkdir()
    tok = PaliGemmaTokenizer.from_file(train_tiny_tokenizer(str(model_dir / "tokenizer.model")))
    cfg = configs.tiny_config(vocab_size=tok.vocab_size, image_size=28)
    write_tiny_checkpoint(str(model_dir / "tiny_28.npz"), cfg, scanned=False)
    out = tmp_path / "out"
    counters = _run(_config([str(corpus / "line0[0-3].*"), str(corpus / "line90.png")], out,
                            model=f"paligemma:{model_dir}", prompt="caption en",
                            resolution=28, max_decode_len=4))
    rows = _labels(str(out)).to_pylist()
    assert sorted(os.path.basename(r["key"]) for r in rows) == [
        "line00.jpeg", "line01.png", "line02.png", "line03.jpeg"]
    assert all(r["prompt"] == "caption en" and r["model"].startswith("paligemma:") for r in rows)
    assert [e["reason"] for e in _errors(str(out))] == ["undecodable"]
    assert counters["label:inputs"] == 5 and counters["label:labelled"] == 4


def _decoded(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_siglip_zero_shot_classes_and_embeddings_through_the_pipeline(corpus, tmp_path):
    """`--model siglip:CKPT --classes ... --embeddings` with the tiny big_vision checkpoint: scores
    and embeddings equal an independent run of the loaded model; a corrupt file is dead-lettered."""
    from tessera.models import registry
    spec = registry.write_tiny_spec("siglip", str(tmp_path / "siglip"))
    out = tmp_path / "out"
    counters = _run(_config([str(corpus / "line0[0-3].*"), str(corpus / "line90.png")], out,
                            model=spec, classes="cat, dog,car", embeddings=True, top_k=2,
                            prompt="a photo of a {}."))
    table = _labels(str(out))
    assert table.schema.equals(LABEL_SCHEMA)
    rows = {os.path.basename(r["key"]): r for r in table.to_pylist()}
    assert sorted(rows) == ["line00.jpeg", "line01.png", "line02.png", "line03.jpeg"]
    assert [e["reason"] for e in _errors(str(out))] == ["undecodable"]
    assert counters["label:inputs"] == 5 and counters["label:labelled"] == 4
    model = registry.load(spec)
    text = model.embed_texts([f"a photo of a {c}." for c in ("cat", "dog", "car")])
    for name, row in rows.items():
        image = _decoded(corpus / name)
        emb = model.embed_images([image])[0]
        scores = model.scores(model.logits(emb[None], text))[0]
        best = np.argsort(-scores)[:2]
        assert [b["label"] for b in row["boxes"]] == [("cat", "dog", "car")[i] for i in best]
        np.testing.assert_allclose([b["score"] for b in row["boxes"]], scores[best], rtol=1e-4)
        assert row["text"] == row["boxes"][0]["label"] and row["model"] == spec
        assert row["boxes"][0]["y_max"] == image.shape[0] and row["prompt"] == "a photo of a {}."
        np.testing.assert_allclose(row["embedding"], emb, rtol=1e-4, atol=1e-6)
        assert np.linalg.norm(row["embedding"]) == pytest.approx(1.0, abs=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["classes"] == "cat, dog,car" and manifest["config"]["embeddings"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "ocr", "--classes", "cat"], "--classes: only siglip, lit, vit, mixer and vmoe models take it"),
    (["--model", "ocr", "--embeddings"], "--embeddings: only siglip, lit, vit, mixer and vmoe models take it"),
    (["--model", "siglip:m.npz"], "--model siglip: give --classes, --classes-file or --embeddings"),
    (["--model", "lit:m.npz", "--classes", "a", "--classes-file", "c.txt"], "not both"),
    (["--model", "siglip:m.npz", "--classes", "cat,dog,cat"], "class names given twice: cat"),
    (["--model", "siglip:m.npz", "--classes", " , "], "--classes: no class names given"),
    (["--model", "siglip:m.npz", "--embeddings", "--prompt", "photo"], "class templates with {}"),
    (["--model", "siglip:m.npz", "--classes-file", "missing.txt"],
     "--classes-file: missing.txt does not exist"),
])
def test_zero_shot_flags_are_one_line_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    base = ["--input", str(tmp_path / "*.png"), "--output", str(tmp_path / "o")]
    assert label.main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_classes_file_one_name_per_line(tmp_path):
    (tmp_path / "classes.txt").write_text("cat\n\n  dog \ncar\n")
    config = _config(["x/*.png"], tmp_path / "o", model="lit:m.npz",
                     classes_file=str(tmp_path / "classes.txt"))
    assert config.class_names() == ("cat", "dog", "car")
    assert _config(["x/*.png"], tmp_path / "o", model="siglip:m.npz",
                   classes="a, b").class_names() == ("a", "b")
