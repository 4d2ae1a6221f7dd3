"""MLP-Mixer family: tiny checkpoints in the released npz layout through `registry.load`, the
published sizes, the forward pass against the paper's formula, one-line errors naming a bad
array, the label handler and `tessera label --model mixer:PATH` end to end. Parity with timm's
MlpMixer is `benchmarks/parity_mixer.py` (needs timm)."""
from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from tessera.models import registry
from tessera.models.mixer import checkpoint, configs
from tessera.models.mixer import model as mixer_model
from tessera.models.image_classifier import TINY_CLASSES
from tessera.models.mixer.tiny import TINY_CHECKPOINT, write_tiny_checkpoint
from tessera.schemas.labels import LabelRequest
from tests.fixtures.trees import same_arrays
from tests.fixtures.image_classifier import (check_bad_checkpoint_named, check_label_end_to_end,
                                            mutated_npz, np_layer_norm, np_mlp)

RNG = np.random.default_rng(0)
IMAGES = [RNG.integers(0, 255, (40, 30, 3), np.uint8), RNG.integers(0, 255, (32, 32, 3), np.uint8)]

# A released Mixer file's names (google-research/vision_transformer), one block shown.
RELEASED_NAMES = {
    "stem/kernel", "stem/bias", "pre_head_layer_norm/scale", "pre_head_layer_norm/bias",
    "head/kernel", "head/bias",
    *(f"MixerBlock_0/{n}/{w}" for n in ("LayerNorm_0", "LayerNorm_1") for w in ("scale", "bias")),
    *(f"MixerBlock_0/{m}/Dense_{i}/{w}" for m in ("token_mixing", "channel_mixing")
      for i in (0, 1) for w in ("kernel", "bias"))}


def test_write_tiny_round_trips_through_registry_load(tmp_path):
    spec = registry.write_tiny_spec("mixer", str(tmp_path / "a"), seed=1)
    assert spec == f"mixer:{tmp_path / 'a' / TINY_CHECKPOINT}"
    with np.load(spec.split(":", 1)[1]) as npz:
        assert {n for n in npz.files if not n.startswith("MixerBlock_1/")} == RELEASED_NAMES
        assert npz["MixerBlock_1/token_mixing/Dense_0/kernel"].shape == (16, 24)  # tokens x D_S
    model = registry.load(spec)
    assert model.cfg == configs.tiny_config() and model.class_names == TINY_CLASSES
    expected = mixer_model.init_params(1, model.cfg)
    assert same_arrays(model.params, expected)
    embeddings, scores = model.predict(IMAGES)
    assert embeddings.shape == (2, 32) and scores.shape == (2, 5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    prefixed = str(tmp_path / "prefixed.npz")  # `params/` (big_vision) loads the same
    checkpoint.save_checkpoint(prefixed, expected, prefix="params/")
    tree, cfg = checkpoint.load_checkpoint(prefixed)
    assert cfg == model.cfg and same_arrays(tree, expected)


@pytest.mark.parametrize("name, params", [("S/16", 18_528_264), ("B/16", 59_880_472),
                                          ("L/16", 208_196_168)])
def test_published_sizes_have_the_published_parameter_counts(name, params):
    """timm's mixer_{s16,b16,l16}_224 counts (1000 classes, 224 px)."""
    cfg = configs.variant(name, num_classes=1000)
    assert sum(math.prod(s) for s in checkpoint.param_shapes(cfg).values()) == params
    with pytest.raises(ValueError, match="unknown Mixer variant 'M/16'"):
        configs.variant("M/16")


def test_forward_is_the_papers_formula():
    """Per image: patches @ stem; per block X += W2 gelu(W1 LN(X)^T) (over tokens), then
    X += MLP(LN(X)) (over channels); LayerNorm, mean over tokens, head."""
    cfg = configs.tiny_config()
    params = mixer_model.init_params(2, cfg)
    image = RNG.uniform(-1, 1, (32, 32, 3)).astype(np.float32)
    patches = image.reshape(4, 8, 4, 8, 3).transpose(0, 2, 1, 3, 4).reshape(16, 8 * 8 * 3)
    x = patches @ params["stem"]["kernel"].reshape(-1, 32) + params["stem"]["bias"]
    for i in range(cfg.num_blocks):
        p = jax.tree_util.tree_map(lambda a, i=i: a[i], params["MixerBlock"])
        x = x + np_mlp(p["token_mixing"], np_layer_norm(x, p["LayerNorm_0"]).T).T
        x = x + np_mlp(p["channel_mixing"], np_layer_norm(x, p["LayerNorm_1"]))
    pooled = np_layer_norm(x, params["pre_head_layer_norm"]).mean(0)
    logits, features = mixer_model.forward(params, image[None], cfg)
    np.testing.assert_allclose(features[0], pooled, rtol=1e-4, atol=1e-5)
    head = pooled @ params["head"]["kernel"] + params["head"]["bias"]
    np.testing.assert_allclose(logits[0], head, rtol=1e-4, atol=1e-5)


def _mutated(tmp_path, mutate) -> str:
    return mutated_npz(tmp_path, write_tiny_checkpoint, mutate)


def _set_all(flat, suffix, shape):
    for key in [k for k in flat if k.endswith(suffix)]:
        flat[key] = np.zeros(shape, np.float32)


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.pop("head/bias"), "missing head/bias"),
    (lambda f: f.pop("pre_head_layer_norm/scale"), "missing pre_head_layer_norm/scale"),
    (lambda f: f.update({"stem/kernel": np.zeros((8, 8, 4, 32), np.float32)}),
     "wrong shape stem/kernel (8, 8, 4, 32) != expected (8, 8, 3, 32)"),
    (lambda f: f.update({"extra/kernel": np.zeros(3, np.float32)}), "unexpected extra/kernel"),
    (lambda f: f.update({"stem/bias": np.ones(32, np.int64)}), "not float stem/bias (int64)"),
    (lambda f: f.pop("MixerBlock_1/channel_mixing/Dense_1/bias"),
     "MixerBlock/channel_mixing/Dense_1/bias: layers [1] missing of 2"),
    (lambda f: f.update({"MixerBlock_0/token_mixing/Dense_1/kernel": np.zeros((24, 9))}),
     "wrong shape: layers disagree, MixerBlock_0/token_mixing/Dense_1/kernel (24, 9) but "
     "MixerBlock_1/token_mixing/Dense_1/kernel (24, 16)"),
    (lambda f: _set_all(f, "token_mixing/Dense_0/kernel", (15, 24)),
     "MixerBlock/token_mixing mixes 15 tokens, not a square grid of patches"),
    (lambda f: f.pop("stem/kernel"), "missing stem/kernel (cannot read the model size from it)"),
])
def test_a_bad_array_is_named_in_a_one_line_error(tmp_path, mutate, message):
    path = _mutated(tmp_path, mutate)
    check_bad_checkpoint_named(f"mixer:{path}", path, message)


def test_handler_labels_top_classes_and_embeddings(tmp_path):
    spec = registry.write_tiny_spec("mixer", str(tmp_path))
    handler = registry.make_handler(spec, workload="label", batch_size=2, top_k=3,
                                    embeddings=True)
    model = handler.load_model()
    requests = [LabelRequest("a", IMAGES[0]), LabelRequest("bad", np.zeros((4, 4, 3), np.int16)),
                LabelRequest("b", IMAGES[1]), LabelRequest("c", IMAGES[1][::2])]
    results = list(handler.run_inference(requests, model))
    assert [r.key for r in results] == ["a", "bad", "b", "c"]
    assert results[1].error.startswith("invalid_image:") and not results[1].boxes
    for result, request in zip(results[::2] + [results[3]], requests[::2] + [requests[3]]):
        embedding, scores = model.predict([request.image])
        best = np.argsort(-scores[0])[:3]
        assert [b.label for b in result.boxes] == [TINY_CLASSES[i] for i in best]
        np.testing.assert_allclose([b.score for b in result.boxes], scores[0][best], rtol=1e-5)
        assert result.text == result.boxes[0].label and result.model == spec
        np.testing.assert_allclose(result.embedding, embedding[0], rtol=1e-5, atol=1e-6)
    without = registry.make_handler(spec, workload="label")
    assert without.run_inference(requests[:1], without.load_model())[0].embedding is None


def test_tessera_label_with_mixer_end_to_end(tmp_path):
    check_label_end_to_end(registry.write_tiny_spec("mixer", str(tmp_path / "mixer")), tmp_path)
