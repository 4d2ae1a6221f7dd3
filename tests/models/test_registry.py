"""The one model registry: `FAMILY:PATH` parsing, workload checks, tiny checkpoints through the
real loaders, and handlers built from names."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from tessera.models import registry


SHIPPED = ["gemini", "lit", "mixer", "ocr", "owlvit", "paligemma", "savedmodel", "seq2seq",
           "siglip", "small_cnn", "unet", "vit", "vmoe"]


def test_every_family_has_a_loader_a_tiny_variant_and_a_handler():
    shipped = [n for n in registry.names() if registry.get(n).module.startswith("tessera.")]
    assert shipped == SHIPPED  # tests may register stand-ins (tests.fixtures.buildings: red_band)
    for name in shipped:
        family = registry.get(name)
        assert callable(getattr(importlib.import_module(family.module), "write_tiny")), name
        assert callable(family.load_fn()), name
        assert callable(family.handler), name


@pytest.mark.parametrize("spec, kwargs, expected", [
    ("ocr", {}, ("ocr", None, None)),
    ("paligemma:/ck/pt_224.npz", {}, ("paligemma", "/ck/pt_224.npz", None)),
    ("paligemma:a.npz,b.model", {}, ("paligemma", "a.npz", "b.model")),
    ("savedmodel:gs://b/m", {}, ("savedmodel", "gs://b/m", None)),
    ("siglip:gs://b/so400m.npz", {}, ("siglip", "gs://b/so400m.npz", None)),
    ("lit:a.npz,b.model", {"workload": "label"}, ("lit", "a.npz", "b.model")),
    ("unet:w.msgpack", {}, ("unet", "w.msgpack", None)),
    ("w.msgpack", {"default_family": "unet"}, ("unet", "w.msgpack", None)),
    ("gs://b/w.msgpack", {"default_family": "unet"}, ("unet", "gs://b/w.msgpack", None)),
    ("UNET:gs://b/w.msgpack", {"default_family": "unet"}, ("unet", "gs://b/w.msgpack", None)),
])
def test_parse(spec, kwargs, expected):
    got = registry.parse(spec, **kwargs)
    assert (got.family, got.path, got.tokenizer) == expected


@pytest.mark.parametrize("spec, kwargs, message", [
    ("yolo", {"workload": "label"}, "expected one of: gemini:MODEL | lit:CKPT.npz"),
    ("yolo:x", {}, "unknown model 'yolo:x'"),
    ("savedmodel", {}, "needs a path"),
    ("ocr:/x", {}, "takes no path"),
    ("unet:w.msgpack", {"workload": "label"}, "does not run in `label`"),
    ("ocr", {"workload": "buildings", "default_family": "unet"}, "does not run in `buildings`"),
])
def test_parse_errors_say_what_is_allowed(spec, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("(", r"\(")):
        registry.parse(spec, **kwargs)


def test_a_second_family_under_one_name_is_refused():
    family = registry.get("unet")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(family)
    assert registry.register(family, replace=True) is family


@pytest.mark.parametrize("family, batch, out_shape", [
    ("unet", np.zeros((2, 32, 32, 3), np.float32), (2, 32, 32)),
    ("small_cnn", np.zeros((2, 28, 28, 1), np.float32), (2, 10)),
    ("seq2seq", np.full((2, 8), 3, np.int32), (2, 11)),  # max_tgt_len - 1 decoded ids
])
def test_tiny_checkpoints_load_through_the_real_loaders(tmp_path, family, batch, out_shape):
    spec = registry.write_tiny_spec(family, str(tmp_path), seed=1)
    assert spec.startswith(f"{family}:") and spec.split(":", 1)[1].startswith(str(tmp_path))
    model = registry.load(spec)
    assert np.asarray(model.apply_fn(model.params, batch)).shape == out_shape
    again = registry.load(registry.write_tiny_spec(family, str(tmp_path / "again"), seed=1))
    other = registry.load(registry.write_tiny_spec(family, str(tmp_path / "other"), seed=2))
    leaves = lambda m: [np.asarray(x) for x in __import__("jax").tree_util.tree_leaves(m.params)]
    assert all(np.array_equal(a, b) for a, b in zip(leaves(model), leaves(again)))  # seeded
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(model), leaves(other)))


def test_handlers_come_from_names(tmp_path):
    from tessera.models.handlers.jax_model import JaxModelHandler
    from tessera.models.handlers.ocr import OcrModelHandler

    spec = registry.write_tiny_spec("unet", str(tmp_path))
    handler = registry.make_handler(spec, workload="buildings", batch_size=4,
                                    accelerator="type:nvidia-l4;count:1")
    assert isinstance(handler, JaxModelHandler)
    assert handler.get_resource_hints() == {"accelerator": "type:nvidia-l4;count:1"}
    loaded = handler.load_model()
    assert loaded(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 32, 32)
    assert isinstance(registry.make_handler("ocr", workload="label"), OcrModelHandler)
    assert registry.write_tiny_spec("ocr", str(tmp_path)) == "ocr"


def test_paligemma_tiny_variant_loads(tmp_path):
    spec = registry.write_tiny_spec("paligemma", str(tmp_path / "pg"))
    model = registry.load(spec)
    assert model.cfg.vision.image_size == 28 and model.tokenizer.vocab_size > 0


def test_label_usage_lists_the_zero_shot_families():
    usage = registry.usage("label")
    assert "siglip:CKPT.npz|DIR[,TOKENIZER.model]" in usage and "lit:" in usage
    assert registry.get("lit").load_fn().__name__ == "load_lit"


@pytest.mark.parametrize("family", ["lit", "mixer", "owlvit", "paligemma", "savedmodel", "siglip",
                                    "vit", "vmoe"])
def test_each_family_names_the_weights_file_a_manifest_checksums(tmp_path, family):
    from tessera import fileio
    spec = registry.parse(registry.write_tiny_spec(family, str(tmp_path / "a"), seed=1))
    found = registry.weights_file(spec)
    assert found and fileio.exists(found) and found.startswith(str(tmp_path / "a")), found
    other = registry.parse(registry.write_tiny_spec(family, str(tmp_path / "b"), seed=2))
    if family != "savedmodel":  # a SavedModel's graph holds no weights
        assert fileio.file_sha256(registry.weights_file(other)) != fileio.file_sha256(found)
    assert registry.weights_file(registry.parse("ocr")) is None
