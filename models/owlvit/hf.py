"""Hugging Face OWL-ViT checkpoints: an `OwlViTForObjectDetection` directory (`config.json`,
`model.safetensors` or shards, the CLIP tokenizer files), as `save_pretrained` writes them.

One table maps every HF tensor to its scenic name and layout, both ways: reading converts to
scenic's tree (then the scenic checks run), and the tiny variant and the parity benchmark write
HF checkpoints through the same table. HF tensors are first checked against the shapes
config.json implies (HF's defaults where it is silent), so a wrong, missing or mis-shaped tensor
is named in HF's terms. The safetensors reading, the shape check and the layout conversions are
SigLIP's (`models/siglip/hf.py`), shared.
"""
from __future__ import annotations

import json

import numpy as np

from tessera import fileio
from tessera.models.owlvit import checkpoint
from tessera.models.owlvit.checkpoint import TEXT, VISUAL, OwlViTCheckpointError
from tessera.models.siglip.hf import (CONFIG, INDEX, SCENIC_CLIP_LAYER, WEIGHTS, check_tensors,
                                      encoder_rows, is_hf_checkpoint, linear_rows, norm_rows,
                                      read_safetensors, to_big_vision, to_hugging_face)

__all__ = ["CONFIG", "INDEX", "WEIGHTS", "is_hf_checkpoint", "load_params", "read_hf_flat",
           "write_hf_checkpoint"]
# OwlViTVisionConfig / OwlViTTextConfig / OwlViTConfig defaults (transformers)
VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, num_channels=3, image_size=768, patch_size=32,
                       hidden_act="quick_gelu", layer_norm_eps=1e-5)
TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                     num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=16,
                     hidden_act="quick_gelu", layer_norm_eps=1e-5)
PROJECTION_DIM, LOGIT_SCALE = 512, 2.6592
# In the HF model but not used for detection (scenic's checkpoint has neither): CLIP's image
# projection and contrastive temperature. Checked, then dropped.
UNUSED = ("owlvit.visual_projection.weight", "owlvit.logit_scale")


def read_config(directory: str) -> tuple[dict, dict, int]:
    """(vision, text, projection_dim) of config.json with HF's defaults filled in."""
    config = json.loads(fileio.read_bytes(fileio.join(directory, CONFIG)))
    if config.get("model_type", "owlvit") != "owlvit":
        hint = " (OWLv2 is not supported)" if config.get("model_type") == "owlv2" else ""
        raise OwlViTCheckpointError(f"{directory}: config.json model_type is "
                                    f"{config.get('model_type')!r}, expected 'owlvit'{hint}")
    vision = {**VISION_DEFAULTS, **(config.get("vision_config") or {})}
    text = {**TEXT_DEFAULTS, **(config.get("text_config") or {})}
    for name, tower in (("vision_config", vision), ("text_config", text)):
        if tower["hidden_act"] != "quick_gelu":
            raise OwlViTCheckpointError(f"{directory}: config.json {name}.hidden_act is "
                                        f"{tower['hidden_act']!r}; OWL-ViT's CLIP uses quick_gelu")
    return vision, text, int(config.get("projection_dim") or PROJECTION_DIM)


def _table(vision: dict, text: dict, projection: int) -> list[tuple[str, str | None, str, tuple]]:
    """(HF name, scenic name or None if unused, layout kind, HF shape) for every tensor."""
    w, p, c = vision["hidden_size"], vision["patch_size"], vision["num_channels"]
    n = (vision["image_size"] // p) ** 2 + 1
    t, v, length = text["hidden_size"], text["vocab_size"], text["max_position_embeddings"]
    emb = "owlvit.vision_model.embeddings."
    rows = [(emb + "class_embedding", VISUAL + "class_embedding", "same", (w,)),
            (emb + "patch_embedding.weight", VISUAL + "conv1/kernel", "conv", (w, c, p, p)),
            (emb + "position_embedding.weight", VISUAL + "positional_embedding", "same", (n, w))]
    rows += norm_rows("owlvit.vision_model.pre_layernorm.", VISUAL + "ln_pre/", w)
    rows += encoder_rows("owlvit.vision_model.encoder.", VISUAL, vision, SCENIC_CLIP_LAYER)
    rows += norm_rows("owlvit.vision_model.post_layernorm.", VISUAL + "ln_post/", w)
    rows += [("owlvit.text_model.embeddings.token_embedding.weight",
              TEXT + "token_embedding/embedding", "same", (v, t)),
             ("owlvit.text_model.embeddings.position_embedding.weight",
              TEXT + "positional_embedding", "same", (length, t))]
    rows += encoder_rows("owlvit.text_model.encoder.", TEXT, text, SCENIC_CLIP_LAYER)
    rows += norm_rows("owlvit.text_model.final_layer_norm.", TEXT + "ln_final/", t)
    rows += [("owlvit.text_projection.weight", TEXT + "text_projection/kernel", "linear",
              (projection, t)),
             (UNUSED[0], None, "same", (projection, w)), (UNUSED[1], None, "same", ())]
    rows += norm_rows("layer_norm.", "backbone/merged_class_token/", w)
    rows += linear_rows("class_head.dense0.", "class_head/Dense_0/", w, t)  # HF: text width
    rows += linear_rows("class_head.logit_shift.", "class_head/logit_shift/", w, 1)
    rows += linear_rows("class_head.logit_scale.", "class_head/logit_scale/", w, 1)
    for i, out in enumerate((w, w, 4)):
        rows += linear_rows(f"box_head.dense{i}.", f"obj_box_head/Dense_{i}/", w, out)
    return rows


def _heads(hf_name: str, vision: dict, text: dict) -> int:
    return (vision if hf_name.startswith("owlvit.vision_model.") else text)["num_attention_heads"]


def read_hf_flat(directory: str) -> tuple[dict[str, np.ndarray], dict]:
    """(scenic flat arrays, config options) of an HF directory, after the HF checks."""
    directory = directory.rstrip("/")
    vision, text, projection = read_config(directory)
    rows = _table(vision, text, projection)
    tensors = read_safetensors(directory)
    check_tensors(tensors, rows, directory, what="OWL-ViT", error=OwlViTCheckpointError)
    flat = {}
    for hf, scenic, kind, _ in rows:
        if scenic is not None:
            flat.update(to_big_vision(kind, np.asarray(tensors[hf], np.float32),
                                      _heads(hf, vision, text), scenic))
    options = dict(exact_gelu=True, merged_norm_eps=float(vision["layer_norm_eps"]),
                   vision_norm_eps=float(vision["layer_norm_eps"]),
                   text_norm_eps=float(text["layer_norm_eps"]))
    return flat, options


def load_params(path: str, dtype=np.float32):
    """(tree, config) of either format: a Hugging Face directory or a scenic flax checkpoint."""
    if is_hf_checkpoint(path):
        flat, options = read_hf_flat(path)
        return checkpoint.from_flat(flat, path.rstrip("/"), dtype, **options)
    return checkpoint.load_checkpoint(path, dtype)


def write_hf_checkpoint(directory: str, flat: dict[str, np.ndarray], vision: dict, text: dict,
                        projection: int, seed: int = 0) -> str:
    """Scenic flat arrays -> config.json + model.safetensors under `directory` (the unused
    tensors random); returns the directory."""
    from safetensors.numpy import save
    vision, text = {**VISION_DEFAULTS, **vision}, {**TEXT_DEFAULTS, **text}
    rng = np.random.default_rng(seed)
    tensors = {}
    for hf, scenic, kind, shape in _table(vision, text, projection):
        if scenic is not None:
            value = to_hugging_face(kind, flat, scenic, shape)
        else:
            value = (np.full(shape, LOGIT_SCALE) if shape == ()
                     else 0.02 * rng.standard_normal(shape))
        tensors[hf] = np.array(value, np.float32, order="C")  # keeps 0-d (ascontiguousarray: 1-d)
    fileio.atomic_write_json(fileio.join(directory, CONFIG), {
        "model_type": "owlvit", "architectures": ["OwlViTForObjectDetection"],
        "vision_config": vision, "text_config": text, "projection_dim": projection,
        "logit_scale_init_value": LOGIT_SCALE})
    fileio.atomic_write_bytes(fileio.join(directory, WEIGHTS), save(tensors))
    return directory
