"""`--model savedmodel:DIR`: a tiny Keras classifier exported as a SavedModel, labelled end to end."""
import glob
import io
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from PIL import Image

from tessera.models import registry as models_registry
from tessera.models import savedmodel_classifier as smc
from tessera.pipelines import label
from tessera.schemas.labels import LabelRequest


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    """The family's tiny variant: mean colour -> (red, green, blue) logits, 8x8 input."""
    return models_registry.write_tiny("savedmodel", str(tmp_path_factory.mktemp("sm")))


def _solid(rgb, size=(20, 30)):
    return np.broadcast_to(np.array(rgb, np.uint8), (*size, 3)).copy()


def test_handler_top_k_and_names(colour_model):
    handler = models_registry.make_handler(f"savedmodel:{colour_model}", top_k=2)
    model = handler.load_model()
    assert (model.height, model.width, model.class_names) == (8, 8, ("red", "green", "blue"))
    results = handler.run_inference([LabelRequest("r", _solid((250, 0, 0))),
                                     LabelRequest("b", _solid((0, 10, 240), (50, 7)))], model)
    assert [r.text for r in results] == ["red", "blue"]
    top = results[0].boxes
    assert len(top) == 2 and top[0].score > 0.9 and top[0].score >= top[1].score
    assert (top[0].y_max, top[0].x_max) == (20.0, 30.0)  # image-level box in the request's pixels


def test_pure_helpers():
    probs = smc.top_k(np.array([0.1, 0.7, 0.2]), 2)
    assert [i for i, _ in probs] == [1, 2] and probs[0][1] == pytest.approx(0.7)
    logits = smc.top_k(np.array([-1.0, 3.0]), 1)
    assert logits[0][0] == 1 and 0.9 < logits[0][1] < 1.0
    x = smc.preprocess(_solid((255, 0, 0)), 8, 8, "float32", (-1.0, 1.0))
    assert x.shape == (8, 8, 3) and x[0, 0, 0] == pytest.approx(1.0) and x[0, 0, 1] == -1.0


def test_registry_parsing():
    assert models_registry.parse("ocr").name == "ocr"
    spec = models_registry.parse("paligemma:/ck/pt_224.npz")
    assert (spec.path, spec.tokenizer) == ("/ck/pt_224.npz", None)  # resolved by the handler
    assert models_registry.parse("paligemma:a.npz,b.model").tokenizer == "b.model"
    for bad in ("nope", "savedmodel", "ocr:/x"):
        with pytest.raises(ValueError):
            models_registry.parse(bad)


def test_savedmodel_labels_through_the_pipeline(colour_model, tmp_path):
    colours = {"r": (230, 20, 10), "g": (5, 200, 30), "b": (10, 20, 220)}
    for i, (name, rgb) in enumerate(sorted(colours.items()) * 2):
        buf = io.BytesIO()
        Image.fromarray(_solid(rgb, (16 + 40 * i, 24))).save(buf, format="PNG")  # several buckets
        (tmp_path / f"{name}{i}.png").write_bytes(buf.getvalue())
    out = tmp_path / "out"
    config = label.LabelConfig(inputs=(str(tmp_path / "*.png"),), output=str(out),
                               model=f"savedmodel:{colour_model}", batch_size=2, run_id="t")
    pipeline = TestPipeline()
    label.build(pipeline, config)
    pipeline.run().wait_until_finish()
    rows = [r for f in glob.glob(str(out / "labels" / "*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert len(rows) == 6 and (out / "COMPLETED").exists()
    expected = {"r": "red", "g": "green", "b": "blue"}
    for row in rows:
        assert row["text"] == expected[os.path.basename(row["key"])[0]]
        assert row["model"] == f"savedmodel:{colour_model}" and len(row["boxes"]) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_name"] == f"savedmodel:{colour_model}"
    assert manifest["model"]["path"].endswith("saved_model.pb") and len(manifest["model"]["sha256"]) == 64


def test_tfrecord_input_of_examples(colour_model, tmp_path):
    """A mixture-style TFRecord (tf.train.Example with image/encoded + id) as input."""
    import tensorflow as tf

    def example(key, data):
        feature = {"id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key.encode()])),
                   "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    buf = io.BytesIO()
    Image.fromarray(_solid((0, 230, 0))).save(buf, format="JPEG")
    path = str(tmp_path / "mix.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example("ex-green", buf.getvalue()))
        writer.write(example("ex-broken", b"\xff\xd8 not really a jpeg"))
    out = tmp_path / "out"
    config = label.LabelConfig(inputs=(path,), output=str(out), model=f"savedmodel:{colour_model}",
                               batch_size=2, run_id="t")
    pipeline = TestPipeline()
    label.build(pipeline, config)
    pipeline.run().wait_until_finish()
    rows = [r for f in glob.glob(str(out / "labels" / "*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [(r["key"], r["text"]) for r in rows] == [("ex-green", "green")]
    errors = [json.loads(line) for f in glob.glob(str(out / "errors" / "*.jsonl")) for line in open(f)]
    assert [(e["key"], e["reason"]) for e in errors] == [("ex-broken", "undecodable")]
