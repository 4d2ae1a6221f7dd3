"""Hugging Face PaliGemma directories through the same loader as big_vision npz files: the same
tree (grouped-query and plain attention), transformers 4 and 5 names, HF-named errors, and
`tessera label --model paligemma:HFDIR` end to end with the same captions as the npz."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file, save_file

from tessera.models.paligemma import checkpoint, configs, hf, model
from tessera.models.paligemma.tokenizer import PaliGemmaTokenizer
from tessera.pipelines import label
from tests.fixtures.paligemma import train_tiny_tokenizer, write_tiny_checkpoint


@pytest.mark.parametrize("kv_heads", [1, 2])  # grouped-query (q_einsum + kv_einsum), plain (qkv)
def test_hf_directory_loads_to_the_same_tree(tmp_path, kv_heads):
    cfg = configs.tiny_config(num_kv_heads=kv_heads)
    params = model.init_params(3, cfg)
    hf.write_hf_checkpoint(str(tmp_path), params, cfg)
    back, cfg_back = hf.load_params(str(tmp_path))
    assert cfg_back == cfg
    flat, flat_back = checkpoint.flatten(params), checkpoint.flatten(back)
    assert sorted(flat) == sorted(flat_back)
    for key in flat:
        np.testing.assert_array_equal(np.asarray(flat[key], np.float32), flat_back[key], err_msg=key)


def _rewrite(directory, edit) -> None:
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def test_transformers_5_names_load_the_same(tmp_path):
    cfg = configs.tiny_config()
    params = model.init_params(4, cfg)
    hf.write_hf_checkpoint(str(tmp_path), params, cfg)
    reference, _ = hf.load_params(str(tmp_path))

    def rename(t):
        for key in list(t):
            new = key.replace("vision_tower.vision_model.", "model.vision_tower.")
            new = new.replace("language_model.model.", "model.language_model.")
            new = new.replace("multi_modal_projector.", "model.multi_modal_projector.")
            t[new] = t.pop(key)
        t["lm_head.weight"] = t["model.language_model.embed_tokens.weight"].copy()  # tied

    _rewrite(str(tmp_path), rename)
    renamed, _ = hf.load_params(str(tmp_path))
    np.testing.assert_array_equal(checkpoint.flatten(renamed)["llm/layers/attn/q_einsum/w"],
                                  checkpoint.flatten(reference)["llm/layers/attn/q_einsum/w"])


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("language_model.model.layers.1.mlp.up_proj.weight"),
     "missing language_model.layers.1.mlp.up_proj.weight"),
    (lambda t: t.update({"language_model.model.layers.0.self_attn.k_proj.weight": np.zeros((32, 32), np.float32)}),
     "wrong shape language_model.layers.0.self_attn.k_proj.weight (32, 32) != expected (16, 32)"),
    (lambda t: t.update({"lm_head.weight": np.ones((320, 32), np.float32)}),
     "lm_head.weight differs from embed_tokens.weight"),
])
def test_a_wrong_tensor_is_named_in_hf_terms(tmp_path, edit, message):
    cfg = configs.tiny_config()
    hf.write_hf_checkpoint(str(tmp_path), model.init_params(0, cfg), cfg)
    _rewrite(str(tmp_path), edit)
    with pytest.raises(checkpoint.CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hf.load_params(str(tmp_path))


def test_label_captions_from_a_hf_directory_equal_the_npz(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    captions = {}
    for form in ("npz", "hf"):
        model_dir = tmp_path / form
        model_dir.mkdir()
        tok = PaliGemmaTokenizer.from_file(train_tiny_tokenizer(str(model_dir / "tokenizer.model")))
        cfg = configs.tiny_config(vocab_size=tok.vocab_size, image_size=28)
        if form == "npz":
            write_tiny_checkpoint(str(model_dir / "tiny_28.npz"), cfg, seed=5, scanned=False)
        else:
            hf.write_hf_checkpoint(str(model_dir), model.init_params(5, cfg), cfg)
        out = tmp_path / f"out_{form}"
        assert label.main(["--input", str(images / "*.png"), "--output", str(out), "--model",
                           f"paligemma:{model_dir}", "--prompt", "caption en", "--resolution", "28",
                           "--max-decode-len", "4", "--direct_num_workers", "1",
                           "--direct_running_mode", "in_memory"]) == 0
        import pyarrow.parquet as pq
        rows = pq.read_table(str(out / "labels")).to_pylist()
        captions[form] = sorted((os.path.basename(r["key"]), r["text"]) for r in rows)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["labelled"] == 3
    assert captions["hf"] == captions["npz"]
    assert manifest["model"]["path"].endswith("model.safetensors")


def test_a_paligemma_2_hf_directory_keeps_its_decoder_settings(tmp_path):
    g2 = configs.PaliGemmaConfig(configs.tiny_config().vision, dataclasses.replace(
        configs.gemma2_text(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1,
                            head_dim=16, vocab_size=320), attn_softcap=7.0, sliding_window=9))
    params = model.init_params(1, g2)
    hf.write_hf_checkpoint(str(tmp_path), params, g2)
    back, cfg = hf.load_params(str(tmp_path))
    assert cfg == g2  # post norms from the tensors, caps and window from config.json
    np.testing.assert_array_equal(checkpoint.flatten(back)["llm/layers/post_ffw_norm/scale"],
                                  np.asarray(params["llm"]["layers"]["post_ffw_norm"]["scale"], np.float32))
