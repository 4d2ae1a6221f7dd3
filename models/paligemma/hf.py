"""Hugging Face PaliGemma checkpoints: a directory with `config.json`, `model.safetensors` (or the
shards its index lists) and `tokenizer.model`, as published on the Hub and as
`PaliGemmaForConditionalGeneration.save_pretrained` writes them.

The SigLIP image tower converts through the same table as `siglip:` checkpoints
(models/siglip/hf.py); the Gemma decoder per layer: q/k/v/o projections to big_vision's einsum
layouts (`q_einsum` + `kv_einsum` for grouped-query attention, `qkv_einsum` otherwise),
gate/up to `gating_einsum`, down to `linear`. Both tensor namings are read: transformers 4's
(`vision_tower.vision_model.`, `language_model.model.`) and 5's (`model.vision_tower.`,
`model.language_model.`). Every tensor is checked against the shapes `config.json` implies
before anything is converted, so a wrong one is named in HF's terms; the result then goes
through the npz loader's own checks.
"""
from __future__ import annotations

import json

import numpy as np

from tessera import fileio
from tessera.models.paligemma import checkpoint
from tessera.models.paligemma.checkpoint import CheckpointError
from tessera.models.siglip import hf as siglip_hf

TOKENIZER = "tokenizer.model"
# PaliGemma (1) 3B defaults (transformers' PaliGemmaConfig), used where config.json is silent
VISION_DEFAULTS = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                       num_attention_heads=16, num_channels=3, image_size=224, patch_size=14)
TEXT_DEFAULTS = dict(hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                     num_attention_heads=8, num_key_value_heads=1, head_dim=256, vocab_size=257216)


def is_hf_checkpoint(path: str) -> bool:
    return siglip_hf.is_hf_checkpoint(path)


def read_config(directory: str) -> tuple[dict, dict]:
    config = json.loads(fileio.read_bytes(fileio.join(directory, siglip_hf.CONFIG)))
    if config.get("model_type", "paligemma") != "paligemma":
        raise CheckpointError(f"{directory}: config.json model_type is "
                              f"{config.get('model_type')!r}, expected 'paligemma'")
    vision = {**VISION_DEFAULTS, **(config.get("vision_config") or {})}
    text = {**TEXT_DEFAULTS, **(config.get("text_config") or {})}
    text["head_dim"] = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    text["gemma2"] = text.get("model_type") == "gemma2"  # PaliGemma 2
    return vision, text


def gemma2_settings(text: dict) -> dict:
    """TextConfig fields of a Gemma 2 decoder from its config.json (Gemma2Config's defaults)."""
    if not text["gemma2"]:
        return {}
    return {"query_scale_dim": text.get("query_pre_attn_scalar") or 256,
            "attn_softcap": text.get("attn_logit_softcapping", 50.0),
            "final_softcap": text.get("final_logit_softcapping", 30.0),
            "sliding_window": text.get("sliding_window") or 4096}


def _norm_names(text: dict) -> dict[str, str]:
    """big_vision norm -> HF norm of one decoder layer (Gemma 1's post_attention_layernorm is the
    pre-MLP norm; Gemma 2 has four)."""
    if text["gemma2"]:
        return {"pre_attention_norm": "input_layernorm",
                "post_attention_norm": "post_attention_layernorm",
                "pre_ffw_norm": "pre_feedforward_layernorm",
                "post_ffw_norm": "post_feedforward_layernorm"}
    return {"pre_attention_norm": "input_layernorm", "pre_ffw_norm": "post_attention_layernorm"}


def canonical_name(name: str) -> str:
    """transformers 4 and 5 tensor names -> one naming (4's, without `vision_model.`)."""
    if name.startswith("model."):
        name = name[len("model."):]
    name = name.replace("vision_tower.vision_model.", "vision_tower.")
    return name.replace("language_model.model.", "language_model.")


def _vision_rows(vision: dict, text: dict) -> list:
    h, c, p = vision["hidden_size"], vision["num_channels"], vision["patch_size"]
    n = (vision["image_size"] // p) ** 2
    rows = [("vision_tower.embeddings.patch_embedding.weight", "img/embedding/kernel", "conv", (h, c, p, p)),
            ("vision_tower.embeddings.patch_embedding.bias", "img/embedding/bias", "same", (h,)),
            ("vision_tower.embeddings.position_embedding.weight", "img/pos_embedding", "pos", (n, h))]
    rows += siglip_hf.encoder_rows("vision_tower.encoder.", "img/Transformer/", vision)
    rows += siglip_hf.norm_rows("vision_tower.post_layernorm.", "img/Transformer/encoder_norm/", h)
    d = text["hidden_size"]
    rows += [("multi_modal_projector.linear.weight", "img/head/kernel", "linear", (d, h)),
             ("multi_modal_projector.linear.bias", "img/head/bias", "same", (d,))]
    return rows


def _text_shapes(text: dict) -> dict[str, tuple]:
    d, f, n, kv, hd = (text[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads",
                                         "num_key_value_heads", "head_dim"))
    shapes = {"language_model.embed_tokens.weight": (text["vocab_size"], d),
              "language_model.norm.weight": (d,)}
    for i in range(text["num_hidden_layers"]):
        layer = f"language_model.layers.{i}."
        shapes.update({layer + "self_attn.q_proj.weight": (n * hd, d),
                       layer + "self_attn.k_proj.weight": (kv * hd, d),
                       layer + "self_attn.v_proj.weight": (kv * hd, d),
                       layer + "self_attn.o_proj.weight": (d, n * hd),
                       layer + "mlp.gate_proj.weight": (f, d), layer + "mlp.up_proj.weight": (f, d),
                       layer + "mlp.down_proj.weight": (d, f)})
        shapes.update({f"{layer}{norm}.weight": (d,) for norm in _norm_names(text).values()})
    return shapes


def _heads_last(w: np.ndarray, heads: int, width: int) -> np.ndarray:
    """HF [heads * head_dim, width] projection -> big_vision [heads, width, head_dim]."""
    return w.reshape(heads, -1, width).transpose(0, 2, 1)


def _text_to_big_vision(t: dict[str, np.ndarray], text: dict) -> dict[str, np.ndarray]:
    d, n, kv = text["hidden_size"], text["num_attention_heads"], text["num_key_value_heads"]
    flat = {"llm/embedder/input_embedding": t["language_model.embed_tokens.weight"],
            "llm/final_norm/scale": t["language_model.norm.weight"]}
    for i in range(text["num_hidden_layers"]):
        src, dst = f"language_model.layers.{i}.", f"llm/layers/{i}/"
        q = _heads_last(t[src + "self_attn.q_proj.weight"], n, d)
        k = _heads_last(t[src + "self_attn.k_proj.weight"], kv, d)
        v = _heads_last(t[src + "self_attn.v_proj.weight"], kv, d)
        if kv == n:
            flat[dst + "attn/qkv_einsum/w"] = np.stack([q, k, v])
        else:
            flat[dst + "attn/q_einsum/w"] = q
            flat[dst + "attn/kv_einsum/w"] = np.stack([k, v])
        flat[dst + "attn/attn_vec_einsum/w"] = t[src + "self_attn.o_proj.weight"].T.reshape(n, -1, d)
        flat[dst + "mlp/gating_einsum"] = np.stack([t[src + "mlp.gate_proj.weight"].T,
                                                    t[src + "mlp.up_proj.weight"].T])
        flat[dst + "mlp/linear"] = t[src + "mlp.down_proj.weight"].T
        for bv, name in _norm_names(text).items():
            flat[f"{dst}{bv}/scale"] = t[f"{src}{name}.weight"]
    return flat


def read_hf_flat(directory: str) -> dict[str, np.ndarray]:
    """The checkpoint in big_vision's flat per-layer layout (float32), after the HF checks."""
    directory = directory.rstrip("/")
    vision, text = read_config(directory)
    tensors = {canonical_name(k): v for k, v in siglip_hf.read_safetensors(directory).items()}
    embed = tensors.get("language_model.embed_tokens.weight")
    head = tensors.pop("lm_head.weight", None)
    if head is not None and embed is not None and not np.array_equal(head, embed):
        raise CheckpointError(f"{directory}: lm_head.weight differs from embed_tokens.weight; "
                              "PaliGemma ties them")
    rows = _vision_rows(vision, text) + [(k, shape) for k, shape in _text_shapes(text).items()]
    siglip_hf.check_tensors(tensors, rows, directory, "PaliGemma", CheckpointError)
    tensors = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
    flat = {}
    for hf, bv, kind, _ in _vision_rows(vision, text):
        flat.update(siglip_hf.to_big_vision(kind, tensors[hf], vision["num_attention_heads"], bv))
    flat.update(_text_to_big_vision(tensors, text))
    return flat


def load_params(path: str, dtype=np.float32, expect=None):
    """(tree, config) of either format: a Hugging Face directory or a big_vision npz."""
    if is_hf_checkpoint(path):
        _, text = read_config(path.rstrip("/"))
        return checkpoint.from_flat(read_hf_flat(path), dtype, expect, gemma2_settings(text))
    return checkpoint.load_checkpoint(path, dtype, expect)


def _text_to_hf(flat: dict[str, np.ndarray], text: dict) -> dict[str, np.ndarray]:
    d, n = text["hidden_size"], text["num_attention_heads"]
    proj = lambda w: w.transpose(0, 2, 1).reshape(-1, d)  # noqa: E731 [heads, width, hd] -> HF
    out = {"language_model.embed_tokens.weight": flat["llm/embedder/input_embedding"],
           "language_model.norm.weight": flat["llm/final_norm/scale"]}
    for i in range(text["num_hidden_layers"]):
        src, dst = f"llm/layers/{i}/", f"language_model.layers.{i}."
        if src + "attn/qkv_einsum/w" in flat:
            q, k, v = flat[src + "attn/qkv_einsum/w"]
        else:
            q, (k, v) = flat[src + "attn/q_einsum/w"], flat[src + "attn/kv_einsum/w"]
        gate, up = flat[src + "mlp/gating_einsum"]
        out.update({dst + "self_attn.q_proj.weight": proj(q), dst + "self_attn.k_proj.weight": proj(k),
                    dst + "self_attn.v_proj.weight": proj(v),
                    dst + "self_attn.o_proj.weight": flat[src + "attn/attn_vec_einsum/w"].reshape(n * q.shape[-1], d).T,
                    dst + "mlp.gate_proj.weight": gate.T, dst + "mlp.up_proj.weight": up.T,
                    dst + "mlp.down_proj.weight": flat[src + "mlp/linear"].T})
        out.update({f"{dst}{name}.weight": flat[f"{src}{bv}/scale"]
                    for bv, name in _norm_names(text).items()})
    return out


def write_hf_checkpoint(directory: str, params: dict, cfg) -> str:
    """A PaliGemma params tree -> config.json + model.safetensors (transformers 4 names) under
    `directory`: the tiny variant's Hugging Face form, through the same tables as the reader."""
    from safetensors.numpy import save
    v, t = cfg.vision, cfg.text
    vision = dict(hidden_size=v.width, intermediate_size=v.mlp_dim, num_hidden_layers=v.depth,
                  num_attention_heads=v.num_heads, image_size=v.image_size, patch_size=v.patch_size,
                  num_channels=3, vision_use_head=False)
    text = dict(hidden_size=t.width, intermediate_size=t.mlp_dim, num_hidden_layers=t.depth,
                num_attention_heads=t.num_heads, num_key_value_heads=t.num_kv_heads,
                head_dim=t.head_dim, vocab_size=t.vocab_size, gemma2=t.post_norms)
    if t.post_norms:
        text.update(model_type="gemma2", query_pre_attn_scalar=t.query_scale_dim or t.head_dim,
                    attn_logit_softcapping=t.attn_softcap, final_logit_softcapping=t.final_softcap,
                    sliding_window=t.sliding_window)
    flat = checkpoint.unstack_layers(checkpoint.flatten(params))  # per-layer, as the tables use
    tensors = {hf: siglip_hf.to_hugging_face(kind, flat, bv, shape)
               for hf, bv, kind, shape in _vision_rows(vision, text)}
    tensors.update(_text_to_hf(flat, text))
    renamed = {k.replace("vision_tower.", "vision_tower.vision_model.", 1)
               .replace("language_model.", "language_model.model.", 1)
               if not k.startswith("multi_modal_projector") else k: v for k, v in tensors.items()}
    fileio.atomic_write_json(fileio.join(directory, siglip_hf.CONFIG), {
        "model_type": "paligemma", "architectures": ["PaliGemmaForConditionalGeneration"],
        "vision_config": vision, "text_config": {k: v for k, v in text.items() if k != "gemma2"},
        "projection_dim": t.width,
        "image_token_index": t.vocab_size - 1})
    fileio.atomic_write_bytes(fileio.join(directory, siglip_hf.WEIGHTS), save(
        {k: np.ascontiguousarray(x, np.float32) for k, x in renamed.items()}))
    return directory
