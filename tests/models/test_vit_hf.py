"""Hugging Face ViT checkpoints (config.json + safetensors) through the same loader as ViT npz
files: same tree, HF-named errors, exact GELU and eps 1e-12, `tessera label` end to end."""
from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np
import pytest
from safetensors.numpy import load_file

from tessera.models import registry
from tessera.models.image_classifier import TINY_CLASSES, ClassifierCheckpointError
from tessera.models.paligemma import siglip
from tessera.models.paligemma.checkpoint import flatten
from tessera.models.vit import checkpoint, configs, hf
from tessera.models.vit.tiny import write_tiny_checkpoint, write_tiny_hf
from tests.fixtures.hf_dirs import assert_same_flat, edited_copy
from tests.fixtures.image_classifier import check_label_end_to_end


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    npz = str(tmp_path_factory.mktemp("npz") / "vit.npz")
    hf_dir = str(tmp_path_factory.mktemp("hf"))
    write_tiny_checkpoint(npz, configs.tiny_config(posemb_with_cls=True), seed=3,
                          layout="original")
    write_tiny_hf(hf_dir, seed=3)
    return npz, hf_dir


def test_hf_directory_loads_to_the_same_tree_as_the_npz(both):
    npz, hf_dir = both
    (a, cfg_a), (b, cfg_b, names) = checkpoint.load_checkpoint(npz), hf.load_params(hf_dir)
    assert cfg_b == dataclasses.replace(cfg_a, gelu_approximate=False, layer_norm_eps=1e-12)
    assert names == TINY_CLASSES  # from config.json id2label
    assert_same_flat(flatten(a), flatten(b))


def test_hf_tensors_have_hf_layouts(tmp_path):
    """Written by hand, not through the table, so a swapped or mis-transposed row (which the
    round trip above cannot see: the table is used both ways) fails here."""
    params = write_tiny_hf(str(tmp_path), seed=5)
    t = load_file(str(tmp_path / hf.WEIGHTS))
    blocks, w = params["Transformer"]["encoderblock"], 32
    attn, mlp = blocks["MultiHeadDotProductAttention_0"], blocks["MlpBlock_0"]
    layer = "vit.encoder.layer.1."
    expected = {
        "vit.embeddings.patch_embeddings.projection.weight":
            params["embedding"]["kernel"].transpose(3, 2, 0, 1),
        "vit.embeddings.position_embeddings": params["pos_embedding"],
        "vit.embeddings.cls_token": params["cls"],
        layer + "layernorm_before.weight": blocks["LayerNorm_0"]["scale"][1],
        layer + "layernorm_after.bias": blocks["LayerNorm_1"]["bias"][1],
        layer + "attention.attention.query.weight": attn["query"]["kernel"][1].reshape(w, w).T,
        layer + "attention.attention.key.bias": attn["key"]["bias"][1].reshape(w),
        layer + "attention.attention.value.weight": attn["value"]["kernel"][1].reshape(w, w).T,
        layer + "attention.output.dense.weight": attn["out"]["kernel"][1].reshape(w, w).T,
        layer + "intermediate.dense.weight": mlp["Dense_0"]["kernel"][1].T,
        layer + "output.dense.weight": mlp["Dense_1"]["kernel"][1].T,
        "vit.layernorm.weight": params["Transformer"]["encoder_norm"]["scale"],
        "classifier.weight": params["head"]["kernel"].T,
        "classifier.bias": params["head"]["bias"],
    }
    for name, value in expected.items():
        np.testing.assert_array_equal(t[name], value, err_msg=name)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("vit.encoder.layer.1.intermediate.dense.weight"),
     "missing vit.encoder.layer.1.intermediate.dense.weight"),
    (lambda t: t.update({"vit.encoder.layer.0.attention.attention.key.weight":
                         np.zeros((32, 16), np.float32)}),
     "wrong shape vit.encoder.layer.0.attention.attention.key.weight (32, 16) != expected "
     "(32, 32)"),
    (lambda t: t.update({"classifier.weight": np.zeros((4, 32), np.float32)}),
     "wrong shape classifier.weight (4, 32) != expected (5, 32)"),
    (lambda t: t.update({"vit.embeddings.mask_token": np.zeros((1, 1, 32), np.float32)}),
     "unexpected vit.embeddings.mask_token"),
])
def test_a_wrong_tensor_is_named_in_hf_terms(both, tmp_path, edit, message):
    path = edited_copy(both[1], tmp_path, edit)
    with pytest.raises(ClassifierCheckpointError, match=re.escape(message)):
        hf.load_params(path)


@pytest.mark.parametrize("config_edit, message", [
    (lambda c: c.update(model_type="deit"), "model_type is 'deit', expected 'vit'"),
    (lambda c: c.update(hidden_act="relu"), "hidden_act 'relu' is not a GELU"),
    (lambda c: c.update(image_size=40), "wrong shape vit.embeddings.position_embeddings"),
])
def test_a_config_that_does_not_fit_is_named(both, tmp_path, config_edit, message):
    path = edited_copy(both[1], tmp_path, lambda t: None, config_edit=config_edit)
    with pytest.raises(ClassifierCheckpointError, match=message):
        hf.load_params(path)


def test_unused_pooler_is_skipped_and_a_vit_model_pooler_is_pre_logits(both, tmp_path):
    pooler = {"pooler.dense.weight": np.eye(32, dtype=np.float32)[::-1].copy(),
              "pooler.dense.bias": np.full(32, 0.5, np.float32)}
    classifier = edited_copy(both[1], tmp_path, lambda t: t.update(
        {"vit." + k: v for k, v in pooler.items()}))
    reference = flatten(hf.load_params(both[1])[0])
    assert flatten(hf.load_params(classifier)[0]).keys() == reference.keys()

    def to_vit_model(t):
        for key in list(t):
            value = t.pop(key)
            if key.startswith("vit."):
                t[key[4:]] = value
        t.update(pooler)
    os.rename(classifier, str(tmp_path / "classifier"))
    params, cfg, names = hf.load_params(edited_copy(both[1], tmp_path, to_vit_model))
    assert (cfg.num_classes, cfg.representation_size, names) == (0, 32, ())
    np.testing.assert_array_equal(params["pre_logits"]["kernel"], pooler["pooler.dense.weight"].T)


def test_exact_gelu_and_eps_reach_the_encoder_block():
    """Zero attention weights: the block is x + MLP(LN_1(x)); x's variance (1e-6) is tiny, so
    eps 1e-12 vs 1e-6 matters, and exact vs tanh GELU shows."""
    rng = np.random.default_rng(0)
    w, m, heads = 8, 16, 2

    def arr(*shape, scale=1.0, offset=0.0):
        return (offset + scale * rng.standard_normal(shape)).astype(np.float32)

    ln = {"scale": arr(w, scale=0.1, offset=1.0), "bias": arr(w)}
    dense = {"Dense_0": {"kernel": arr(w, m), "bias": arr(m)},
             "Dense_1": {"kernel": arr(m, w), "bias": arr(w)}}
    zeros = {"kernel": np.zeros((w, heads, w // heads), np.float32),
             "bias": np.zeros((heads, w // heads), np.float32)}
    block = {"LayerNorm_0": ln, "LayerNorm_1": ln, "MlpBlock_0": dense,
             "MultiHeadDotProductAttention_0": {
                 "query": zeros, "key": zeros, "value": zeros,
                 "out": {"kernel": np.zeros((heads, w // heads, w), np.float32),
                         "bias": np.zeros(w, np.float32)}}}
    x = arr(3, w, scale=1e-3)

    def expected(eps):
        z = x.astype(np.float64)
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + eps)
        h = (z * ln["scale"] + ln["bias"]) @ dense["Dense_0"]["kernel"] + dense["Dense_0"]["bias"]
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
        return x + h @ dense["Dense_1"]["kernel"] + dense["Dense_1"]["bias"]

    got = np.asarray(siglip.encoder_block(block, x[None], 1e-12, False))[0]
    np.testing.assert_allclose(got, expected(1e-12), rtol=1e-4, atol=1e-4)
    assert np.abs(got - expected(1e-6)).max() > 1e-1
    tanh = np.asarray(siglip.encoder_block(block, x[None], 1e-12, True))[0]
    assert np.abs(tanh - got).max() > 1e-4


def test_tessera_label_with_a_hugging_face_vit_end_to_end(both, tmp_path):
    model = registry.load(f"vit:{both[1]}")
    assert model.class_names == TINY_CLASSES and not model.cfg.gelu_approximate
    check_label_end_to_end(f"vit:{both[1]}", tmp_path, weights_suffix=hf.WEIGHTS)
