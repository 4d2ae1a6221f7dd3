"""ViT classifier family: tiny checkpoints in the released layouts through `registry.load`, the
published sizes, ViT-22B's switches (each read off the arrays and each changing the output; the
parallel block checked against its formula), one-line errors naming a bad array, the label
handler and `tessera label --model vit:PATH` end to end. Parity with timm's VisionTransformer is
`benchmarks/parity_vit.py` (needs timm)."""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from tessera.models import registry
from tessera.models.image_classifier import preprocess
from tessera.models.paligemma import siglip
from tessera.models.vit import checkpoint, configs
from tessera.models.vit import model as vit_model
from tessera.models.image_classifier import TINY_CLASSES
from tessera.models.vit.tiny import TINY_CHECKPOINT, write_tiny_checkpoint
from tessera.schemas.labels import LabelRequest
from tests.fixtures.trees import same_arrays
from tests.fixtures.image_classifier import (check_bad_checkpoint_named, check_label_end_to_end,
                                            mutated_npz, np_layer_norm, np_mlp)

RNG = np.random.default_rng(0)
IMAGES = [RNG.integers(0, 255, (40, 30, 3), np.uint8), RNG.integers(0, 255, (32, 32, 3), np.uint8)]


def _logits(params, cfg, seed=0):
    images = np.random.default_rng(seed).uniform(-1, 1, (2, cfg.image_size, cfg.image_size, 3))
    return np.asarray(vit_model.forward(params, images.astype(np.float32), cfg)[0])


def test_write_tiny_round_trips_through_registry_load(tmp_path):
    spec = registry.write_tiny_spec("vit", str(tmp_path / "a"), seed=1)
    assert spec == f"vit:{tmp_path / 'a' / TINY_CHECKPOINT}"
    path = spec.split(":", 1)[1]
    with np.load(path) as npz:
        names = set(npz.files)
    assert {"params/embedding/kernel", "params/cls", "params/pos_embedding", "params/head/kernel",
            "params/Transformer/encoderblock_1/MultiHeadDotProductAttention_0/query/kernel",
            "params/Transformer/encoder_norm/scale"} <= names
    assert all(n.startswith("params/") for n in names)  # big_vision's released layout
    model = registry.load(spec)
    assert model.cfg == configs.tiny_config() and model.class_names == TINY_CLASSES
    expected = vit_model.init_params(1, model.cfg)
    assert same_arrays(model.params, expected)
    embeddings, scores = model.predict(IMAGES)
    assert embeddings.shape == (2, 32) and scores.shape == (2, 5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert registry.load(f"vit:{tmp_path / 'a'}").class_names == TINY_CLASSES  # a directory
    other = registry.load(registry.write_tiny_spec("vit", str(tmp_path / "b"), seed=2))
    assert not np.allclose(other.predict(IMAGES)[1], scores)


@pytest.mark.parametrize("name, options, params", [
    ("Ti/16", {}, 5_717_416), ("B/16", {}, 86_567_656), ("L/16", {}, 304_326_632),
])
def test_published_sizes_have_the_published_parameter_counts(name, options, params):
    """timm's vit_{tiny,base,large}_patch16_224 counts (cls token with a position, 1000 classes)."""
    cfg = configs.variant(name, num_classes=1000, posemb_with_cls=True, **options)
    assert sum(math.prod(s) for s in checkpoint.param_shapes(cfg).values()) == params


def test_variants_and_vit_22b_options():
    b16 = configs.variant("B/16")
    assert (b16.width, b16.depth, b16.mlp_dim, b16.num_heads, b16.grid) == (768, 12, 3072, 12, 14)
    big = configs.variant("22B/14")
    assert (big.width, big.depth, big.mlp_dim, big.num_heads, big.head_dim) == (
        6144, 48, 24576, 48, 128)
    assert big.parallel_block and big.qk_norm and not big.qkv_bias and not big.norm_bias
    shapes = checkpoint.param_shapes(big)
    assert checkpoint.MHA + "query_ln/scale" in shapes
    assert checkpoint.MHA + "query/bias" not in shapes
    assert checkpoint.BLOCKS + "LayerNorm_1/scale" not in shapes
    assert checkpoint.BLOCKS + "MlpBlock_0/Dense_0/bias" in shapes  # the MLP keeps its biases
    with pytest.raises(ValueError, match="unknown ViT variant 'X/16'"):
        configs.variant("X/16")


ORIGINAL_NAMES = {  # a released vision_transformer / AugReg ViT, one layer shown
    "cls", "embedding/kernel", "embedding/bias", "Transformer/posembed_input/pos_embedding",
    "Transformer/encoder_norm/scale", "Transformer/encoder_norm/bias", "head/kernel", "head/bias",
    *(f"Transformer/encoderblock_0/{n}/{w}" for n in ("LayerNorm_0", "LayerNorm_2")
      for w in ("scale", "bias")),
    *(f"Transformer/encoderblock_0/MultiHeadDotProductAttention_1/{n}/{w}"
      for n in ("query", "key", "value", "out") for w in ("kernel", "bias")),
    *(f"Transformer/encoderblock_0/MlpBlock_3/Dense_{i}/{w}" for i in (0, 1)
      for w in ("kernel", "bias"))}


def test_original_big_vision_and_scanned_files_load_the_same(tmp_path):
    cfg = configs.tiny_config(depth=1, posemb_with_cls=True)
    params = vit_model.init_params(3, cfg)
    for name, kw in (("orig", dict(layout="original")), ("bv", {}), ("scan", dict(scanned=True))):
        checkpoint.save_checkpoint(str(tmp_path / f"{name}.npz"), params, **kw)
    with np.load(tmp_path / "orig.npz") as npz:
        assert set(npz.files) == ORIGINAL_NAMES
        assert npz["Transformer/posembed_input/pos_embedding"].shape == (1, 17, 32)
    loaded = [checkpoint.load_checkpoint(str(tmp_path / f"{n}.npz"))
              for n in ("orig", "bv", "scan")]
    assert all(c == cfg for _, c in loaded)
    for tree, _ in loaded:
        assert same_arrays(tree, params)
    with pytest.raises(ValueError, match="original ViT layout has per-layer sequential blocks"):
        checkpoint.save_checkpoint(str(tmp_path / "x.npz"), vit_model.init_params(
            0, configs.tiny_config(parallel_block=True)), layout="original")


def _np_attention(p, x):
    """Multi-head self-attention written out per head (x [L, D]), QK norm if present."""
    heads = p["query"]["kernel"].shape[1]
    out = np.zeros_like(x)
    for h in range(heads):
        q, k, v = (x @ p[n]["kernel"][:, h] + (p[n]["bias"][h] if "bias" in p[n] else 0)
                   for n in ("query", "key", "value"))
        if "query_ln" in p:
            q, k = np_layer_norm(q, p["query_ln"]), np_layer_norm(k, p["key_ln"])
        logits = q @ k.T / np.sqrt(q.shape[-1])
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        out += (probs / probs.sum(-1, keepdims=True)) @ v @ p["out"]["kernel"][h]
    return out + p["out"]["bias"]


def test_parallel_block_equals_its_formula_on_a_hand_built_case():
    """ViT-22B's block, x + MHA(LN(x)) + MLP(LN(x)) with one norm, QK norm and no QKV / norm
    biases, against a per-head numpy version; with `LayerNorm_1` it is the sequential block."""
    rng = np.random.default_rng(7)
    d, heads, hd = 4, 2, 2
    attn = {n: {"kernel": rng.standard_normal((d, heads, hd))} for n in ("query", "key", "value")}
    attn.update(query_ln={"scale": 1 + 0.3 * rng.standard_normal(hd)},
                key_ln={"scale": 1 + 0.3 * rng.standard_normal(hd)},
                out={"kernel": rng.standard_normal((heads, hd, d)), "bias": rng.standard_normal(d)})
    block = {"LayerNorm_0": {"scale": 1 + 0.3 * rng.standard_normal(d)},
             "MultiHeadDotProductAttention_0": attn,
             "MlpBlock_0": {"Dense_0": {"kernel": rng.standard_normal((d, 8)),
                                        "bias": rng.standard_normal(8)},
                            "Dense_1": {"kernel": rng.standard_normal((8, d)),
                                        "bias": rng.standard_normal(d)}}}
    block = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), block)
    x = rng.standard_normal((3, d)).astype(np.float32)
    y = np_layer_norm(x, block["LayerNorm_0"])
    parallel = x + _np_attention(attn, y) + np_mlp(block["MlpBlock_0"], y)
    got = np.asarray(siglip.encoder_block(block, x[None]))[0]
    np.testing.assert_allclose(got, parallel, rtol=1e-4, atol=1e-4)
    block["LayerNorm_1"] = {"scale": np.float32(1.2) * np.ones(d, np.float32)}
    x1 = x + _np_attention(attn, y)
    sequential = x1 + np_mlp(block["MlpBlock_0"], np_layer_norm(x1, block["LayerNorm_1"]))
    got = np.asarray(siglip.encoder_block(block, x[None]))[0]
    np.testing.assert_allclose(got, sequential, rtol=1e-4, atol=1e-4)
    assert not np.allclose(sequential, parallel, atol=1e-2)


def _switched(params: dict, switch: str) -> dict:
    """The tiny tree with one ViT-22B change made to its arrays."""
    params = jax.tree_util.tree_map(np.array, params)
    blocks = params["Transformer"]["encoderblock"]
    attn = blocks["MultiHeadDotProductAttention_0"]
    if switch == "parallel_block":
        del blocks["LayerNorm_1"]
    elif switch == "qk_norm":
        for name in ("query_ln", "key_ln"):
            attn[name] = {"scale": np.linspace(0.5, 2.0, 2 * 16, dtype=np.float32).reshape(2, 16)}
    elif switch == "qkv_bias":
        for name in ("query", "key", "value"):
            del attn[name]["bias"]
    elif switch == "norm_bias":
        for norm in (blocks["LayerNorm_0"], blocks["LayerNorm_1"],
                     params["Transformer"]["encoder_norm"]):
            del norm["bias"]
    return params


@pytest.mark.parametrize("switch, value", [("parallel_block", True), ("qk_norm", True),
                                           ("qkv_bias", False), ("norm_bias", False)])
def test_each_vit_22b_switch_is_read_from_the_file_and_changes_the_output(tmp_path, switch, value):
    base = configs.tiny_config()
    params = vit_model.init_params(4, base)
    path = str(tmp_path / "switched.npz")
    checkpoint.save_checkpoint(path, _switched(params, switch))
    tree, cfg = checkpoint.load_checkpoint(path)
    assert cfg == dataclasses.replace(base, **{switch: value})
    assert not np.allclose(_logits(tree, cfg), _logits(params, base), atol=1e-3)


def test_pooling_and_pre_logits_follow_big_vision():
    """gap: mean of the normed tokens; map: MAPHead_0; pre_logits: tanh(Dense) before the head."""
    cfg = configs.tiny_config(pool="gap", representation_size=24)
    params = vit_model.init_params(5, cfg)
    images = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    tokens = np.asarray(vit_model.encode(params, images, cfg))
    assert tokens.shape == (2, 16, 32)
    pre = np.tanh(tokens.mean(1) @ params["pre_logits"]["kernel"] + params["pre_logits"]["bias"])
    logits, features = vit_model.forward(params, images, cfg)
    np.testing.assert_allclose(features, pre, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, pre @ params["head"]["kernel"] + params["head"]["bias"],
                               rtol=1e-5, atol=1e-5)
    map_cfg = configs.tiny_config(pool="map")
    map_params = vit_model.init_params(5, map_cfg)
    assert "MAPHead_0" in map_params
    assert vit_model.forward(map_params, images, map_cfg)[1].shape == (2, 32)


def _mutated(tmp_path, mutate) -> str:
    return mutated_npz(tmp_path, write_tiny_checkpoint, mutate)


def _drop_all(flat, suffix):
    for key in [k for k in flat if k.endswith(suffix)]:
        del flat[key]


BLK = "params/Transformer/encoderblock_"


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.pop("params/head/bias"), "missing head/bias"),
    (lambda f: f.update({"params/cls": np.zeros((1, 1, 16), np.float32)}),
     "wrong shape cls (1, 1, 16) != expected (1, 1, 32)"),
    (lambda f: f.update({"params/extra/kernel": np.zeros(3, np.float32)}),
     "unexpected extra/kernel"),
    (lambda f: f.update({"params/head/kernel": np.ones((32, 5), np.int32)}),
     "not float head/kernel (int32)"),
    (lambda f: f.pop("params/embedding/kernel"),
     "missing embedding/kernel (cannot read the model size from it)"),
    (lambda f: f.pop(BLK + "1/LayerNorm_0/scale"),
     "Transformer/encoderblock/LayerNorm_0/scale: layers [1] missing of 2"),
    (lambda f: f.update({BLK + "1/MlpBlock_0/Dense_1/kernel": np.zeros((64, 16), np.float32)}),
     "wrong shape: layers disagree, Transformer/encoderblock_0/MlpBlock_0/Dense_1/kernel "
     "(64, 32) but Transformer/encoderblock_1/MlpBlock_0/Dense_1/kernel (64, 16)"),
    (lambda f: _drop_all(f, "MultiHeadDotProductAttention_0/key/bias"),
     "missing Transformer/encoderblock/MultiHeadDotProductAttention_0/key/bias"),
    (lambda f: _drop_all(f, "LayerNorm_1/scale"),  # not silently a parallel block
     "missing Transformer/encoderblock/LayerNorm_1/scale"),
    (lambda f: f.update({"params/pos_embedding": np.zeros((1, 15, 32), np.float32)}),
     "pos_embedding has 15 positions, not a square grid (+ cls)"),
])
def test_a_bad_array_is_named_in_a_one_line_error(tmp_path, mutate, message):
    path = _mutated(tmp_path, mutate)
    check_bad_checkpoint_named(f"vit:{path}", path, message)


def test_value_range_and_class_names_are_checked(tmp_path):
    spec = registry.write_tiny_spec("vit", str(tmp_path))
    image = np.array([[[0, 128, 255]]], np.uint8)
    np.testing.assert_allclose(preprocess(image, 1), [[[-1.0, 128 / 127.5 - 1, 1.0]]], atol=1e-6)
    np.testing.assert_allclose(preprocess(image, 1, (0.0, 1.0)), [[[0.0, 128 / 255, 1.0]]],
                               atol=1e-6)
    unit = registry.load(spec, value_range=(0, 1))
    assert unit.cfg.value_range == (0.0, 1.0)
    assert not np.allclose(unit.predict(IMAGES)[1], registry.load(spec).predict(IMAGES)[1])
    assert registry.load(spec, class_names=tuple("abcde")).class_names == tuple("abcde")
    with pytest.raises(ValueError, match="class_names names 2 classes but the checkpoint's head "
                                         "has 5"):
        registry.load(spec, class_names=("a", "b"))
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="labels.txt names 2 classes"):
        registry.load(spec)
    (tmp_path / "labels.txt").unlink()
    assert registry.load(spec).class_names == ("0", "1", "2", "3", "4")  # indices


def test_handler_labels_top_classes_and_embeddings(tmp_path):
    spec = registry.write_tiny_spec("vit", str(tmp_path))
    handler = registry.make_handler(spec, workload="label", batch_size=2, top_k=2,
                                    embeddings=True, accelerator="type:nvidia-l4;count:1")
    assert handler.get_resource_hints() == {"accelerator": "type:nvidia-l4;count:1"}
    model = handler.load_model()
    requests = [LabelRequest("a", IMAGES[0]), LabelRequest("bad", np.zeros((5, 5), np.uint8)),
                LabelRequest("b", IMAGES[1]), LabelRequest("c", IMAGES[0][:7])]
    results = list(handler.run_inference(requests, model))
    assert [r.key for r in results] == ["a", "bad", "b", "c"]
    assert results[1].error.startswith("invalid_image:") and results[1].embedding is None
    for result, request in zip(results[::2] + [results[3]], requests[::2] + [requests[3]]):
        embedding, scores = model.predict([request.image])
        best = np.argsort(-scores[0])[:2]
        assert [b.label for b in result.boxes] == [TINY_CLASSES[i] for i in best]
        np.testing.assert_allclose([b.score for b in result.boxes], scores[0][best], rtol=1e-5)
        assert result.text == result.boxes[0].label and result.model == spec
        assert (result.boxes[0].y_max, result.boxes[0].x_max) == request.image.shape[:2]
        np.testing.assert_allclose(result.embedding, embedding[0], rtol=1e-5, atol=1e-6)
    named = registry.make_handler(spec, workload="label", class_names=tuple("vwxyz"))
    assert named.run_inference(requests[:1], named.load_model())[0].text in "vwxyz"


def test_a_checkpoint_without_head_gives_embeddings_only(tmp_path):
    cfg = configs.tiny_config(num_classes=0, pool="gap")
    write_tiny_checkpoint(str(tmp_path / "features.npz"), cfg)
    handler = registry.make_handler(f"vit:{tmp_path / 'features.npz'}", workload="label",
                                    embeddings=True)
    model = handler.load_model()
    assert model.cfg == cfg and model.class_names == () and model.predict(IMAGES)[1] is None
    result = handler.run_inference([LabelRequest("a", IMAGES[0])], model)[0]
    assert result.boxes == () and result.text == "" and len(result.embedding) == 32


def test_tessera_label_with_vit_end_to_end(tmp_path):
    check_label_end_to_end(registry.write_tiny_spec("vit", str(tmp_path / "vit")), tmp_path)


def test_label_flags_for_classifiers():
    """vit/mixer take --classes / --classes-file (the head's names) and --embeddings, all
    optional (labels.txt names the classes); not both class lists."""
    from tessera.config import ConfigError
    from tessera.transforms.label.config import LabelConfig
    base = dict(inputs=("x/*.png",), output="o", run_id="t")
    assert LabelConfig(model="vit:m.npz", **base).class_names() == ()
    config = LabelConfig(model="mixer:m.npz", classes="a, b", embeddings=True, **base)
    assert config.class_names() == ("a", "b")
    with pytest.raises(ConfigError, match="give one of them, not both"):
        LabelConfig(model="vit:m.npz", classes="a", classes_file="c.txt", **base)
