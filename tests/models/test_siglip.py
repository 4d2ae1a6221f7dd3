"""SigLIP / LiT two-tower family: tiny towers, sigmoid vs softmax scoring, big_vision's npz layout
through `registry.load`, one-line errors naming a bad tensor, and the zero-shot label handler.
Parity with Hugging Face's SiglipModel is `benchmarks/parity_siglip.py` (needs torch)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from tessera.models import registry
from tessera.models.paligemma.configs import VisionConfig
from tessera.models.siglip import checkpoint, configs
from tessera.models.siglip import model as two_tower
from tessera.models.siglip.checkpoint import SiglipCheckpointError
from tessera.models.siglip.inference import scores_from_logits
from tessera.models.siglip.tiny import TINY_CHECKPOINT, write_tiny_checkpoint
from tessera.models.siglip.tokenizer import TextTokenizer, train_tiny_tokenizer
from tessera.schemas.labels import LabelRequest
from tests.fixtures.trees import leaves, same_arrays

CLASSES = ("cat", "dog", "car")


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory) -> str:
    return registry.write_tiny_spec("siglip", str(tmp_path_factory.mktemp("siglip")))


@pytest.mark.parametrize("pool, num_params", [("map", 57_154), ("tok", 48_674), ("gap", 48_642)])
def test_tiny_towers_shapes_and_parameter_counts(pool, num_params):
    cfg = configs.tiny_config(vocab_size=64, pool=pool)
    params = two_tower.init_params(0, cfg)
    assert sum(x.size for x in leaves(params)) == num_params
    assert {k: tuple(v.shape) for k, v in checkpoint.bv_npz.flatten(params).items()} == (
        checkpoint.param_shapes(cfg))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 28, 28, 3)).astype(np.float32)
    tokens = rng.integers(0, 64, (5, 16))
    zimg = two_tower.normalize(two_tower.encode_image(params["img"], images, cfg.image))
    ztxt = two_tower.normalize(two_tower.encode_text(params["txt"], tokens, cfg.text))
    assert zimg.shape == (3, 32) and ztxt.shape == (5, 32)
    logits = two_tower.logits(params, zimg, ztxt)
    assert logits.shape == (3, 5) and np.all(np.isfinite(logits))
    if pool == "map":  # golden values, recorded once the model matched HF SiglipModel (benchmark)
        np.testing.assert_allclose(zimg[0, :4], [0.250553, -0.024589, 0.237003, 0.080178],
                                   atol=2e-5)
        np.testing.assert_allclose(ztxt[0, :4], [-0.181449, 0.0468, 0.189813, 0.132631],
                                   atol=2e-5)
        np.testing.assert_allclose(logits[0], [0.07004, -0.98051, -1.95754, -2.90183, 0.44944],
                                   atol=1e-4)


def test_logits_are_scaled_cosines_plus_bias():
    params = {"t": np.log(np.array([10.0], np.float32)), "b": np.array([-2.0], np.float32)}
    zimg, ztxt = np.array([[3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    cos = np.array([[0.6, 0.8]])
    img, txt = two_tower.normalize(zimg), two_tower.normalize(ztxt)
    np.testing.assert_allclose(two_tower.logits(params, img, txt), cos * 10 - 2, rtol=1e-6)
    del params["b"]  # LiT: no bias
    np.testing.assert_allclose(two_tower.logits(params, img, txt), cos * 10, rtol=1e-6)


def test_sigmoid_scores_each_class_alone_and_softmax_makes_them_compete():
    logits = np.array([[2.0, 0.0, -2.0]])
    sigmoid, softmax = scores_from_logits(logits, "sigmoid"), scores_from_logits(logits, "softmax")
    np.testing.assert_allclose(sigmoid, [[0.880797, 0.5, 0.119203]], atol=1e-6)
    np.testing.assert_allclose(softmax, [[0.866813, 0.117310, 0.015876]], atol=1e-6)
    assert softmax.sum() == pytest.approx(1.0) and sigmoid.sum() != pytest.approx(1.0)
    # Dropping a class leaves SigLIP's other scores alone; LiT's renormalise.
    np.testing.assert_allclose(scores_from_logits(logits[:, :2], "sigmoid"), sigmoid[:, :2])
    assert not np.allclose(scores_from_logits(logits[:, :2], "softmax"), softmax[:, :2])
    with pytest.raises(ValueError, match="scoring must be one of"):
        scores_from_logits(logits, "tanh")


def test_write_tiny_round_trips_through_registry_load(tmp_path):
    spec = registry.write_tiny_spec("siglip", str(tmp_path / "a"), seed=1)
    assert spec == f"siglip:{tmp_path / 'a' / TINY_CHECKPOINT}"
    path = spec.split(":", 1)[1]
    with np.load(path) as npz:
        names = set(npz.files)
    assert {"params/t", "params/b", "params/img/MAPHead_0/probe", "params/txt/head/kernel",
            "params/img/Transformer/encoderblock_1/LayerNorm_0/scale",
            "params/txt/Encoder_0/encoderblock_1/MlpBlock_0/Dense_1/bias"} <= names
    assert all(n.startswith("params/") for n in names)  # the published checkpoints' layout
    siglip = registry.load(spec)
    assert siglip.scoring == "sigmoid"
    assert siglip.cfg == configs.tiny_config(vocab_size=siglip.tokenizer.vocab_size)
    expected = two_tower.init_params(1, siglip.cfg)
    assert same_arrays(siglip.params, expected)
    lit = registry.load(f"lit:{path}")
    assert lit.scoring == "softmax"
    images = [np.full((30, 40, 3), 200, np.uint8), np.zeros((28, 28, 3), np.uint8)]
    img, txt = siglip.embed_images(images), siglip.embed_texts(CLASSES)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(lit.logits(img, txt), siglip.logits(img, txt))
    np.testing.assert_allclose(lit.scores(lit.logits(img, txt)).sum(axis=1), 1.0, rtol=1e-6)
    other = registry.load(registry.write_tiny_spec("siglip", str(tmp_path / "b"), seed=2))
    assert not np.allclose(other.embed_images(images), img)


# The names of a published SigLIP checkpoint (one layer per tower shown), as transformers'
# `convert_siglip_to_hf.py` reads them.
_BLOCK = ("LayerNorm_0/scale", "LayerNorm_0/bias", "LayerNorm_1/scale", "LayerNorm_1/bias",
          "MlpBlock_0/Dense_0/kernel", "MlpBlock_0/Dense_0/bias", "MlpBlock_0/Dense_1/kernel",
          "MlpBlock_0/Dense_1/bias") + tuple(
    f"MultiHeadDotProductAttention_0/{n}/{w}" for n in ("query", "key", "value", "out")
    for w in ("kernel", "bias"))
REAL_NAMES = {
    "params/img/embedding/kernel", "params/img/embedding/bias", "params/img/pos_embedding",
    "params/img/Transformer/encoder_norm/scale", "params/img/Transformer/encoder_norm/bias",
    "params/img/MAPHead_0/probe", "params/txt/Embed_0/embedding", "params/txt/pos_embedding",
    "params/txt/Encoder_0/encoder_norm/scale", "params/txt/Encoder_0/encoder_norm/bias",
    "params/txt/head/kernel", "params/txt/head/bias", "params/t", "params/b",
    *(f"params/img/Transformer/encoderblock_0/{n}" for n in _BLOCK),
    *(f"params/txt/Encoder_0/encoderblock_0/{n}" for n in _BLOCK),
    *(f"params/img/MAPHead_0/{n}" for n in _BLOCK if "LayerNorm_1" not in n)}


def test_layout_names_and_shapes_match_a_published_siglip_b16():
    cfg = configs.TwoTowerConfig(
        configs.ImageTowerConfig(VisionConfig(768, 1, 3072, 12, patch_size=16, image_size=224)),
        configs.TextTowerConfig(768, 1, 3072, 12, vocab_size=32_000, seq_len=64, out_dim=768))
    shapes = checkpoint.param_shapes(cfg)
    per_layer = checkpoint.unstack_layers({k: np.zeros(s[:1]) for k, s in shapes.items()})
    assert {"params/" + k for k in per_layer} == REAL_NAMES
    assert shapes["img/pos_embedding"] == (1, 196, 768)
    assert shapes["img/MAPHead_0/MultiHeadDotProductAttention_0/query/kernel"] == (768, 12, 64)
    assert shapes["txt/pos_embedding"] == (1, 64, 768) and shapes["b"] == (1,)


def _mutated(tmp_path, mutate) -> str:
    path = str(tmp_path / "ckpt.npz")
    write_tiny_checkpoint(path, configs.tiny_config(vocab_size=64))
    with np.load(path) as npz:
        flat = dict(npz)
    mutate(flat)
    np.savez(path, **flat)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.pop("params/txt/head/bias"), "missing txt/head/bias"),
    (lambda f: f.update({"params/img/MAPHead_0/probe": np.zeros((1, 1, 16), np.float32)}),
     "wrong shape img/MAPHead_0/probe (1, 1, 16) != expected (1, 1, 32)"),
    (lambda f: f.update({"params/img/extra/kernel": np.zeros(3, np.float32)}),
     "unexpected img/extra/kernel"),
    (lambda f: f.update({"params/t": np.ones(1, np.int32)}), "not float t (int32)"),
    (lambda f: f.pop("params/img/embedding/kernel"), "missing img/embedding/kernel"),
    (lambda f: f.pop("params/txt/Encoder_0/encoderblock_1/LayerNorm_0/scale"),
     "txt/Encoder_0/encoderblock/LayerNorm_0/scale: layers [1] missing of 2"),
    (lambda f: f.pop("params/b"), "missing b (SigLIP's logit bias); a LiT checkpoint? use lit:"),
])
def test_a_bad_tensor_is_named_in_a_one_line_error(tmp_path, mutate, message):
    path = _mutated(tmp_path, mutate)
    train_tiny_tokenizer(str(tmp_path / "tokenizer.model"))
    with pytest.raises(SiglipCheckpointError) as err:
        registry.load(f"siglip:{path}")
    assert message in str(err.value) and path in str(err.value)
    assert "\n" not in str(err.value)


def test_lit_checkpoints_need_no_bias(tmp_path):
    path = _mutated(tmp_path, lambda f: f.pop("params/b"))
    train_tiny_tokenizer(str(tmp_path / "tokenizer.model"))
    assert not registry.load(f"lit:{path}").cfg.has_bias


def test_scanned_and_per_layer_files_load_the_same(tmp_path):
    cfg = configs.tiny_config(vocab_size=64)
    write_tiny_checkpoint(str(tmp_path / "loop.npz"), cfg, seed=3)
    write_tiny_checkpoint(str(tmp_path / "scan.npz"), cfg, seed=3, scanned=True)
    loop, loop_cfg = checkpoint.load_checkpoint(str(tmp_path / "loop.npz"))
    scan, scan_cfg = checkpoint.load_checkpoint(str(tmp_path / "scan.npz"))
    assert loop_cfg == scan_cfg == cfg
    assert same_arrays(loop, scan)


def test_tokenizer_appends_a_sticky_eos_and_pads_with_it(tmp_path):
    tok = TextTokenizer.from_file(train_tiny_tokenizer(str(tmp_path / "tokenizer.model")))
    ids = tok.tokenize(["a cat", "a photo of a cat " * 10], seq_len=8)
    assert ids.shape == (2, 8) and ids.dtype == np.int32
    short = len(tok.sp.encode("a cat"))
    assert list(ids[0, :short]) == tok.sp.encode("a cat")
    assert set(ids[0, short:]) == {tok.eos_id} == {1}  # the EOS id big_vision pads with
    assert ids[1, -1] == tok.eos_id and tok.eos_id not in ids[1, :-1]  # cut, EOS kept last
    assert np.array_equal(pickle.loads(pickle.dumps(tok)).tokenize(["a cat"], 8), ids[:1])


def test_handler_labels_top_classes_and_embeddings(tiny_spec):
    handler = registry.make_handler(tiny_spec, workload="label", batch_size=4, top_k=2,
                                    class_names=CLASSES, embeddings=True,
                                    prompt="a photo of a {}")
    classifier = handler.load_model()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, shape, np.uint8) for shape in ((40, 30, 3), (28, 28, 3))]
    requests = [LabelRequest("a", images[0]), LabelRequest("bad", np.zeros((5, 5), np.uint8)),
                LabelRequest("b", images[1])]
    results = list(handler.run_inference(requests, classifier))
    assert [r.key for r in results] == ["a", "bad", "b"]
    assert results[1].error.startswith("invalid_image:") and results[1].embedding is None
    model = classifier.model  # independent recomputation of the scores
    text = model.embed_texts([f"a photo of a {c}" for c in CLASSES])
    for result, image in zip((results[0], results[2]), images):
        emb = model.embed_images([image])[0]
        logit = emb @ text.T * np.exp(model.params["t"][0]) + model.params["b"][0]
        expected = 1 / (1 + np.exp(-logit))
        order = np.argsort(-expected)[:2]
        assert [b.label for b in result.boxes] == [CLASSES[i] for i in order]
        np.testing.assert_allclose([b.score for b in result.boxes], expected[order], rtol=1e-4)
        assert result.text == result.boxes[0].label and result.error is None
        assert (result.boxes[0].y_max, result.boxes[0].x_max) == image.shape[:2]
        np.testing.assert_allclose(result.embedding, emb, rtol=1e-5, atol=1e-6)
    embeddings_only = registry.make_handler(tiny_spec, workload="label", embeddings=True)
    only = embeddings_only.run_inference(requests[:1], embeddings_only.load_model())[0]
    assert only.boxes == () and only.text == "" and len(only.embedding) == 32
