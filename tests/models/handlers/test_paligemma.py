"""PaliGemmaModelHandler under RunInference, on a tiny checkpoint + tokenizer written in tmp."""
import dataclasses

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from tessera.models import paligemma
from tessera.models.paligemma import configs
from tessera.models.paligemma import model
from tessera.models.handlers.paligemma import PaliGemmaModelHandler
from tessera.models.paligemma.paths import resolve_paths
from tessera.models.paligemma.postprocess import parse_objects
from tessera.models.paligemma.preprocess import preprocess
from tests.fixtures.paligemma import train_tiny_tokenizer, write_tiny_checkpoint
from tessera.models.paligemma.tokenizer import PaliGemmaTokenizer
from tessera.schemas.labels import LABEL_SCHEMA, LabelRequest, LabelResult

MAX_LEN = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("paligemma")
    tok = PaliGemmaTokenizer.from_file(train_tiny_tokenizer(str(d / "tokenizer.model")))
    cfg = configs.tiny_config(vocab_size=tok.vocab_size, image_size=28)
    params = write_tiny_checkpoint(str(d / "tiny_28.npz"), cfg, scanned=False)
    return d, cfg, params, tok


def _requests():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in
              [(28, 28), (40, 64), (100, 30), (28, 28), (17, 23)]]
    prompts = ["caption en", "detect cat ; dog", "ocr", "answer en what is in the image", ""]
    reqs = [LabelRequest(f"img{i}", im, p) for i, (im, p) in enumerate(zip(images, prompts))]
    bad = [LabelRequest("gray", np.zeros((28, 28), np.uint8), "caption en"),
           LabelRequest("float", np.zeros((28, 28, 3), np.float32), "caption en")]
    return reqs, bad


def _reference(cfg, params, tok, request, prompt):
    """Independent recomputation: one example, no KV cache, no handler."""
    ids = tok.encode_prefix(prompt)
    tokens, mask = np.zeros((1, 16), np.int32), np.zeros((1, 16), bool)
    tokens[0, 16 - len(ids):], mask[0, 16 - len(ids):] = ids, True  # one shape: one compilation
    image = preprocess(request.image, cfg.resolution)[None]
    out, _ = model.decode_greedy_nocache(params, image, tokens, mask, np.ones(1, bool), cfg=cfg,
                                         max_decode_len=MAX_LEN, eos_id=tok.eos_id)
    return tok.decode(out[0])


def test_run_inference_labels_every_request(model_dir):
    d, cfg, params, tok = model_dir
    handler = PaliGemmaModelHandler.from_path(str(d), max_decode_len=MAX_LEN, batch_size=4,
                                              resolution=28)
    reqs, bad = _requests()
    expected = {r.key: _reference(cfg, params, tok, r, r.prompt or "caption en") for r in reqs}

    def check(results):
        by_key = {r.key: r for r in results}
        assert sorted(by_key) == sorted([r.key for r in reqs + bad])
        for r in reqs:
            res = by_key[r.key]
            assert isinstance(res, LabelResult) and res.error is None
            assert res.model == "paligemma" and res.prompt == (r.prompt or "caption en")
            assert res.text == expected[r.key]
            h, w = r.image.shape[:2]
            assert [b.label for b in res.boxes] == [o.box.label for o in
                                                    parse_objects(res.text, h, w)]
        assert "HxWx3" in by_key["gray"].error and "uint8" in by_key["float"].error
        pa.Table.from_pylist([r.to_row() for r in results], schema=LABEL_SCHEMA)

    with TestPipeline() as p:
        results = (p | beam.Create(reqs + bad, reshuffle=False) | RunInference(handler))
        assert_that(results, check)


def test_one_compiled_program_per_prompt_bucket(model_dir):
    d, cfg, params, tok = model_dir
    handler = PaliGemmaModelHandler(str(d / "tiny_28.npz"), str(d / "tokenizer.model"),
                                    max_decode_len=MAX_LEN, batch_size=4)
    loaded = handler.load_model()
    reqs, _ = _requests()
    first = list(handler.run_inference(reqs[:3], loaded))
    again = list(handler.run_inference(reqs[3:], loaded))
    assert loaded.compiled == {(4, 16)}  # ragged batches padded to 4 rows, prompts to 16 tokens
    assert [r.key for r in first + again] == [r.key for r in reqs]
    long_prompt = "answer en " + " ".join(["what is in the image"] * 40)
    (res,) = handler.run_inference([dataclasses.replace(reqs[0], prompt=long_prompt)], loaded)
    assert res.error and "max_prompt_len" in res.error


def test_resolution_must_match_checkpoint(model_dir):
    d, *_ = model_dir
    handler = PaliGemmaModelHandler.from_path(str(d / "tiny_28.npz"), resolution=224)
    with pytest.raises(ValueError, match="28px checkpoint"):
        handler.load_model()


def test_resolve_paths(model_dir, tmp_path):
    d, *_ = model_dir
    assert resolve_paths(str(d)) == (str(d / "tiny_28.npz"), str(d / "tokenizer.model"))
    assert resolve_paths(str(d / "tiny_28.npz"))[1] == str(d / "tokenizer.model")
    with pytest.raises(FileNotFoundError, match="npz"):
        resolve_paths(str(tmp_path))
    loaded = paligemma.load(str(d), max_decode_len=2, batch_size=1)
    assert loaded.resolution == 28 and loaded.cfg.text.vocab_size == loaded.tokenizer.vocab_size


def test_handler_surface(model_dir):
    d, *_ = model_dir
    handler = PaliGemmaModelHandler.from_path(str(d), batch_size=16, accelerator="type:nvidia-l4")
    assert handler.batch_elements_kwargs()["max_batch_size"] == 16
    assert handler.get_resource_hints() == {"accelerator": "type:nvidia-l4"}


class _ScriptedModel:
    """A loaded model whose answer is fixed, to test the handler's parsing of detection output
    (a random tiny model practically never emits four `<loc>` tokens in a row)."""

    def __init__(self, tok, text):
        self.tokenizer, self.ids = tok, tuple(tok.encode(text) + [tok.eos_id])

    def check_prompt(self, prompt):
        return None

    def generate(self, images, prompts):
        from tessera.models.paligemma.inference import Generation
        logps = tuple(-0.5 for _ in self.ids)
        return [Generation(self.tokenizer.decode(self.ids), self.ids, logps) for _ in images]


def test_detection_answers_become_pixel_boxes_of_the_original_image(model_dir):
    import math
    d, _, _, tok = model_dir
    text = "<loc0256><loc0100><loc0768><loc1000> cat ; <loc0000><loc0010><loc0512><loc1023> dog"
    handler = PaliGemmaModelHandler.from_path(str(d))
    image = np.zeros((40, 64, 3), np.uint8)
    (res,) = handler.run_inference([LabelRequest("k", image, "detect cat ; dog")],
                                   _ScriptedModel(tok, text))
    assert res.text == text and res.error is None
    p = math.exp(-0.5)
    assert [dataclasses.astuple(b) for b in res.boxes] == [
        ("cat", 10.0, 6.25, 30.0, 62.5, pytest.approx(p)),
        ("dog", 0.0, 0.625, 20.0, 63.9375, pytest.approx(p)),
    ]
