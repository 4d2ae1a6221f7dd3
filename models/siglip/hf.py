"""Hugging Face SigLIP checkpoints: a directory with `config.json`, `model.safetensors` (or shards
listed in `model.safetensors.index.json`) and the SentencePiece `spiece.model`, as `SiglipModel`
`save_pretrained` writes them and as most users have their weights.

One table maps every HF tensor to its big_vision name and layout, in both directions: reading
converts to the big_vision tree the npz loader produces (then the same checks run), and the tiny
variant and the tests write HF checkpoints through the same table. Before converting, every HF
tensor is checked against the shapes `config.json` implies (HF's defaults where it is silent), so
a wrong, missing or mis-shaped tensor is named in HF's own terms.
"""
from __future__ import annotations

import json

import numpy as np

from tessera import fileio
from tessera.models.siglip import checkpoint
from tessera.models.siglip.checkpoint import SiglipCheckpointError

CONFIG, WEIGHTS, INDEX, TOKENIZER = ("config.json", "model.safetensors",
                                     "model.safetensors.index.json", "spiece.model")
# SiglipVisionConfig / SiglipTextConfig defaults (transformers), used where config.json is silent
VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                       num_attention_heads=12, num_channels=3, image_size=224, patch_size=16)
TEXT_DEFAULTS = dict(vocab_size=32000, hidden_size=768, intermediate_size=3072,
                     num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=64)
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32}


def is_hf_checkpoint(path: str) -> bool:
    return fileio.exists(fileio.join(path.rstrip("/"), CONFIG))


def weights_file(path: str) -> str | None:
    """A Hugging Face directory's weights (or their shard index); None for other paths."""
    if not is_hf_checkpoint(path):
        return None
    weights = fileio.join(path.rstrip("/"), WEIGHTS)
    return weights if fileio.exists(weights) else fileio.join(path.rstrip("/"), INDEX)


def read_config(directory: str) -> tuple[dict, dict]:
    """(vision, text) settings of config.json with HF's defaults filled in."""
    config = json.loads(fileio.read_bytes(fileio.join(directory, CONFIG)))
    if config.get("model_type", "siglip") != "siglip":
        raise SiglipCheckpointError(f"{directory}: config.json model_type is "
                                    f"{config.get('model_type')!r}, expected 'siglip'")
    vision = {**VISION_DEFAULTS, **(config.get("vision_config") or {})}
    text = {**TEXT_DEFAULTS, **(config.get("text_config") or {})}
    text["projection_size"] = text.get("projection_size") or text["hidden_size"]
    return vision, text


def _dtype(name: str):
    if name == "BF16":
        import ml_dtypes  # installed with JAX
        return ml_dtypes.bfloat16
    if name not in _DTYPES:
        raise SiglipCheckpointError(f"unsupported safetensors dtype {name}")
    return _DTYPES[name]


def read_safetensors(directory: str) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint (one file, or the shards its index lists)."""
    from safetensors import deserialize
    index = fileio.join(directory, INDEX)
    if fileio.exists(index):
        names = sorted(set(json.loads(fileio.read_bytes(index))["weight_map"].values()))
    else:
        names = [WEIGHTS]
    tensors = {}
    for name in names:
        path = fileio.join(directory, name)
        if not fileio.exists(path):
            raise SiglipCheckpointError(f"{directory}: missing {name}")
        for key, view in deserialize(fileio.read_bytes(path)):
            tensors[key] = np.frombuffer(view["data"], _dtype(view["dtype"])).reshape(view["shape"])
    return tensors


def _table(vision: dict, text: dict) -> list[tuple[str, str, str, tuple]]:
    """(HF name, big_vision name, layout kind, HF shape) for every weight of the model."""
    rows = []
    h, mlp, c, p = (vision[k] for k in ("hidden_size", "intermediate_size", "num_channels",
                                        "patch_size"))
    n = (vision["image_size"] // p) ** 2
    rows += [("vision_model.embeddings.patch_embedding.weight", "img/embedding/kernel", "conv", (h, c, p, p)),
             ("vision_model.embeddings.patch_embedding.bias", "img/embedding/bias", "same", (h,)),
             ("vision_model.embeddings.position_embedding.weight", "img/pos_embedding", "pos", (n, h))]
    rows += encoder_rows("vision_model.encoder.", "img/Transformer/", vision)
    rows += norm_rows("vision_model.post_layernorm.", "img/Transformer/encoder_norm/", h)
    head = "img/MAPHead_0/"
    rows += [("vision_model.head.probe", head + "probe", "same", (1, 1, h)),
             ("vision_model.head.attention.in_proj_weight", head + "MultiHeadDotProductAttention_0/",
              "packed_qkv", (3 * h, h)),
             ("vision_model.head.attention.in_proj_bias", head + "MultiHeadDotProductAttention_0/",
              "packed_qkv_bias", (3 * h,)),
             ("vision_model.head.attention.out_proj.weight",
              head + "MultiHeadDotProductAttention_0/out/kernel", "attn_out", (h, h)),
             ("vision_model.head.attention.out_proj.bias",
              head + "MultiHeadDotProductAttention_0/out/bias", "same", (h,))]
    rows += norm_rows("vision_model.head.layernorm.", head + "LayerNorm_0/", h)
    rows += mlp_rows("vision_model.head.mlp.", head + "MlpBlock_0/", h, mlp)
    t, v, length, proj = (text[k] for k in ("hidden_size", "vocab_size", "max_position_embeddings",
                                            "projection_size"))
    rows += [("text_model.embeddings.token_embedding.weight", "txt/Embed_0/embedding", "same", (v, t)),
             ("text_model.embeddings.position_embedding.weight", "txt/pos_embedding", "pos", (length, t))]
    rows += encoder_rows("text_model.encoder.", "txt/Encoder_0/", text)
    rows += norm_rows("text_model.final_layer_norm.", "txt/Encoder_0/encoder_norm/", t)
    rows += [("text_model.head.weight", "txt/head/kernel", "linear", (proj, t)),
             ("text_model.head.bias", "txt/head/bias", "same", (proj,)),
             ("logit_scale", "t", "same", (1,)), ("logit_bias", "b", "same", (1,))]
    return rows


def norm_rows(hf: str, bv: str, width: int) -> list:
    return [(hf + "weight", bv + "scale", "same", (width,)), (hf + "bias", bv + "bias", "same", (width,))]


def mlp_rows(hf: str, bv: str, width: int, mlp: int) -> list:
    return linear_rows(hf + "fc1.", bv + "Dense_0/", width, mlp) + linear_rows(hf + "fc2.", bv + "Dense_1/", mlp, width)


# Where one encoder layer's parts live in a flax checkpoint: big_vision's ViT, or scenic's CLIP
# (OWL-ViT); the HF side is the same CLIP-style layer for both.
BIG_VISION_LAYER = {"layer": "encoderblock_{i}/", "norms": ("LayerNorm_0/", "LayerNorm_1/"),
                    "attn": "MultiHeadDotProductAttention_0/",
                    "mlp": ("MlpBlock_0/Dense_0/", "MlpBlock_0/Dense_1/")}
SCENIC_CLIP_LAYER = {"layer": "transformer/resblocks_{i}/", "norms": ("ln_0/", "ln_1/"), "attn": "attn/",
                     "mlp": ("mlp/c_fc/", "mlp/c_proj/")}


def encoder_rows(hf: str, flax: str, tower: dict, layout: dict = BIG_VISION_LAYER) -> list:
    """Rows of every encoder layer of an HF CLIP-style tower, named as `layout` places them."""
    width, mlp = tower["hidden_size"], tower["intermediate_size"]
    rows = []
    for i in range(tower["num_hidden_layers"]):
        src, dst = f"{hf}layers.{i}.", flax + layout["layer"].format(i=i)
        rows += norm_rows(src + "layer_norm1.", dst + layout["norms"][0], width)
        rows += norm_rows(src + "layer_norm2.", dst + layout["norms"][1], width)
        attn = dst + layout["attn"]
        for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
            rows += [(f"{src}self_attn.{short}_proj.weight", f"{attn}{name}/kernel", "attn_in", (width, width)),
                     (f"{src}self_attn.{short}_proj.bias", f"{attn}{name}/bias", "attn_bias", (width,))]
        rows += [(src + "self_attn.out_proj.weight", attn + "out/kernel", "attn_out", (width, width)),
                 (src + "self_attn.out_proj.bias", attn + "out/bias", "same", (width,))]
        rows += linear_rows(src + "mlp.fc1.", dst + layout["mlp"][0], width, mlp)
        rows += linear_rows(src + "mlp.fc2.", dst + layout["mlp"][1], mlp, width)
    return rows


def linear_rows(hf: str, flax: str, n_in: int, n_out: int) -> list:
    return [(hf + "weight", flax + "kernel", "linear", (n_out, n_in)),
            (hf + "bias", flax + "bias", "same", (n_out,))]


def to_big_vision(kind: str, x: np.ndarray, heads: int, bv: str) -> dict[str, np.ndarray]:
    width = x.shape[-1]
    if kind == "same":
        return {bv: x}
    if kind == "linear":
        return {bv: x.T}
    if kind == "conv":
        return {bv: x.transpose(2, 3, 1, 0)}
    if kind == "pos":
        return {bv: x[None]}
    if kind == "attn_in":
        return {bv: x.T.reshape(width, heads, width // heads)}
    if kind == "attn_bias":
        return {bv: x.reshape(heads, -1)}
    if kind == "attn_out":
        return {bv: x.T.reshape(heads, width // heads, width)}
    parts = np.split(x, 3)
    if kind == "packed_qkv":
        return {f"{bv}{n}/kernel": w.T.reshape(width, heads, width // heads)
                for n, w in zip(("query", "key", "value"), parts)}
    return {f"{bv}{n}/bias": b.reshape(heads, -1) for n, b in zip(("query", "key", "value"), parts)}


def to_hugging_face(kind: str, flat: dict, bv: str, shape: tuple) -> np.ndarray:
    if kind == "packed_qkv":
        return np.concatenate([flat[f"{bv}{n}/kernel"].reshape(shape[1], shape[1]).T
                               for n in ("query", "key", "value")])
    if kind == "packed_qkv_bias":
        return np.concatenate([flat[f"{bv}{n}/bias"].reshape(-1) for n in ("query", "key", "value")])
    x = flat[bv]
    if kind in ("same", "pos", "attn_bias"):
        return x.reshape(shape)
    if kind == "conv":
        return x.transpose(3, 2, 0, 1)
    return x.reshape(shape[1], shape[0]).T  # linear, attn_in, attn_out: [in, ...] -> [out, in]


def _heads(hf_name: str, vision: dict, text: dict) -> int:
    return (vision if hf_name.startswith("vision_model.") else text)["num_attention_heads"]


def check_tensors(tensors: dict[str, np.ndarray], rows: list, source: str, what: str = "SigLIP",
                  error: type = SiglipCheckpointError) -> None:
    """One line naming missing, unexpected and mis-shaped HF tensors (`rows`: (name, ..., shape))."""
    expected = {row[0]: row[-1] for row in rows}
    found = {k: v for k, v in tensors.items() if not k.endswith("position_ids")}  # buffers
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshapen = sorted(f"{k} {tuple(found[k].shape)} != expected {expected[k]}"
                       for k in set(expected) & set(found) if tuple(found[k].shape) != expected[k])
    problems = [f"{kind} {', '.join(names[:6])}" + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")
                for kind, names in (("missing", missing), ("unexpected", unexpected),
                                    ("wrong shape", misshapen)) if names]
    if problems:
        raise error(f"{source}: not a Hugging Face {what} checkpoint its config.json "
                    "describes: " + "; ".join(problems))


def read_hf_flat(directory: str) -> dict[str, np.ndarray]:
    """The checkpoint in big_vision's flat per-layer layout (float32), after the HF checks."""
    directory = directory.rstrip("/")
    vision, text = read_config(directory)
    rows = _table(vision, text)
    tensors = read_safetensors(directory)
    check_tensors(tensors, rows, directory)
    flat = {}
    for hf, bv, kind, _ in rows:
        flat.update(to_big_vision(kind, np.asarray(tensors[hf], np.float32), _heads(hf, vision, text), bv))
    return flat


def load_params(path: str, dtype=np.float32):
    """(tree, config) of either format: a Hugging Face directory or a big_vision npz."""
    if hf_dir := (path.rstrip("/") if is_hf_checkpoint(path) else None):
        return checkpoint.from_flat(read_hf_flat(hf_dir), hf_dir, dtype)
    return checkpoint.load_checkpoint(path, dtype)


def write_hf_checkpoint(directory: str, flat: dict[str, np.ndarray], vision: dict, text: dict) -> str:
    """Big_vision flat per-layer arrays -> config.json + model.safetensors under `directory`."""
    from safetensors.numpy import save
    rows = _table({**VISION_DEFAULTS, **vision}, {**TEXT_DEFAULTS, **text})
    tensors = {hf: np.ascontiguousarray(to_hugging_face(kind, flat, bv, shape), np.float32)
               for hf, bv, kind, shape in rows}
    fileio.atomic_write_json(fileio.join(directory, CONFIG), {
        "model_type": "siglip", "architectures": ["SiglipModel"],
        "vision_config": vision, "text_config": text})
    fileio.atomic_write_bytes(fileio.join(directory, WEIGHTS), save(tensors))
    return directory
