"""Hugging Face SigLIP checkpoints (config.json + safetensors + spiece.model) through the same
loader as big_vision npz files: same tree, HF-named errors, shards, `tessera label` end to end."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file, save_file

from tessera.models.paligemma.checkpoint import flatten
from tessera.models.siglip import checkpoint, hf, tiny
from tessera.pipelines import label
from tests.fixtures.hf_dirs import assert_same_flat, edited_copy


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    npz_dir, hf_dir = tmp_path_factory.mktemp("npz"), tmp_path_factory.mktemp("hf")
    return tiny.write_tiny(str(npz_dir), seed=3), tiny.write_tiny_hf(str(hf_dir), seed=3)


def test_hf_directory_loads_to_the_same_tree_as_the_big_vision_npz(both):
    npz, hf_dir = both
    (a, cfg_a), (b, cfg_b) = checkpoint.load_checkpoint(npz), hf.load_params(hf_dir)
    assert cfg_a == cfg_b
    assert_same_flat(flatten(a), flatten(b))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("vision_model.encoder.layers.1.mlp.fc1.weight"),
     "missing vision_model.encoder.layers.1.mlp.fc1.weight"),
    (lambda t: t.update({"text_model.head.weight": np.zeros((5, 24), np.float32)}),
     "wrong shape text_model.head.weight (5, 24) != expected (32, 24)"),
    (lambda t: t.update({"vision_model.extra.weight": np.zeros(3, np.float32)}),
     "unexpected vision_model.extra.weight"),
])
def test_a_wrong_tensor_is_named_in_hf_terms(both, tmp_path, edit, message):
    path = edited_copy(both[1], tmp_path, edit, files=(hf.CONFIG, hf.TOKENIZER))
    with pytest.raises(checkpoint.SiglipCheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hf.load_params(path)


def test_sharded_checkpoints_load_through_their_index(both, tmp_path):
    npz, hf_dir = both
    tensors = load_file(os.path.join(hf_dir, hf.WEIGHTS))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(tmp_path / shard))
    (tmp_path / hf.INDEX).write_text(json.dumps(
        {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}))
    (tmp_path / hf.CONFIG).write_bytes(open(os.path.join(hf_dir, hf.CONFIG), "rb").read())
    params, _ = hf.load_params(str(tmp_path))
    reference, _ = checkpoint.load_checkpoint(npz)
    np.testing.assert_array_equal(flatten(params)["img/embedding/kernel"],
                                  flatten(reference)["img/embedding/kernel"])


def test_label_runs_siglip_from_a_hugging_face_directory(both, tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "out"
    assert label.main(["--input", str(images / "*.png"), "--output", str(out), "--model",
                       f"siglip:{both[1]}", "--classes", "cat,dog,car", "--direct_num_workers", "1",
                       "--direct_running_mode", "in_memory"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["labelled"] == 3
    assert manifest["model"]["path"] == os.path.join(both[1], hf.WEIGHTS)
