"""Hugging Face ViT checkpoints: a directory with `config.json` and `model.safetensors` (or the
shards `model.safetensors.index.json` lists), as `ViTForImageClassification` or `ViTModel`
`save_pretrained` writes them and as the Hub's `google/vit-*` models are published.

One table maps every HF tensor to its big_vision name and layout, in both directions (the helpers
are SigLIP's, `models/siglip/hf.py`): reading checks every tensor against the shapes config.json
implies (transformers' `ViTConfig` defaults where it is silent), so a wrong, missing or
mis-shaped tensor is named in HF's terms, then converts to the big_vision names the npz loader
produces (`cls` has a position of its own, as in the original ViT) and runs its checks. HF's
classifier reads the `cls` token after the final LayerNorm; a `ViTModel`'s pooler,
tanh(Dense(cls)), is big_vision's `pre_logits`. A classifier checkpoint's `vit.pooler.*` is
unused by transformers and skipped here. Exact GELU and eps 1e-12 go into the config
(`gelu_approximate`, `layer_norm_eps`).
"""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np

from tessera import fileio
from tessera.models.image_classifier import ClassifierCheckpointError as ClassifierError
from tessera.models.image_classifier import check_layout, unstack_layers
from tessera.models.paligemma import checkpoint as bv_npz
from tessera.models.siglip import hf as siglip_hf
from tessera.models.siglip.hf import (check_tensors, norm_rows, read_safetensors, to_big_vision,
                                      to_hugging_face)
from tessera.models.vit import checkpoint
from tessera.models.vit.configs import ViTConfig

CONFIG, WEIGHTS, INDEX = siglip_hf.CONFIG, siglip_hf.WEIGHTS, siglip_hf.INDEX
# transformers' ViTConfig defaults, used where config.json is silent
DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, hidden_act="gelu", layer_norm_eps=1e-12, image_size=224,
                patch_size=16, num_channels=3, qkv_bias=True, pooler_act="tanh")
_EXACT, _TANH = ("gelu",), ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
_PLACEHOLDER = re.compile(r"^LABEL_\d+$")  # PretrainedConfig's default id2label names
WHAT = "ViT"


def is_hf_checkpoint(path: str) -> bool:
    return siglip_hf.is_hf_checkpoint(path)


def read_config(directory: str) -> dict:
    """config.json with transformers' ViTConfig defaults filled in; `num_labels` from id2label."""
    config = json.loads(fileio.read_bytes(fileio.join(directory, CONFIG)))
    if config.get("model_type", "vit") != "vit":
        raise ClassifierError(f"{directory}: config.json model_type is "
                              f"{config.get('model_type')!r}, expected 'vit'")
    config = {**DEFAULTS, **config}
    config["num_labels"] = len(config.get("id2label") or {}) or config.get("num_labels", 2)
    config.setdefault("pooler_output_size", config["hidden_size"])
    act = config["hidden_act"]
    if act not in _EXACT + _TANH:
        raise ClassifierError(f"{directory}: config.json hidden_act {act!r} is not a GELU "
                              f"({', '.join(_EXACT + _TANH)})")
    if config["num_channels"] != 3:
        raise ClassifierError(f"{directory}: config.json num_channels is "
                              f"{config['num_channels']}, expected 3 (RGB)")
    h, heads = config["hidden_size"], config["num_attention_heads"]
    if config.get("head_dim") not in (None, h // heads) or h % heads:
        raise ClassifierError(f"{directory}: config.json hidden_size {h} is not "
                              f"{heads} heads x head_dim {config.get('head_dim', h / heads)}")
    return config


def _table(config: dict, prefix: str, classifier: bool, pooler: bool) -> list:
    """(HF name, big_vision name, layout kind, HF shape) for every weight of the model.

    `prefix` is "vit." in a classifier checkpoint, "" in a `ViTModel` one."""
    h, mlp, p = config["hidden_size"], config["intermediate_size"], config["patch_size"]
    n = (config["image_size"] // p) ** 2
    e, rows = prefix + "embeddings.", []
    rows += [(e + "cls_token", "cls", "same", (1, 1, h)),
             (e + "position_embeddings", "pos_embedding", "same", (1, n + 1, h)),
             (e + "patch_embeddings.projection.weight", "embedding/kernel", "conv", (h, 3, p, p)),
             (e + "patch_embeddings.projection.bias", "embedding/bias", "same", (h,))]
    for i in range(config["num_hidden_layers"]):
        src, dst = f"{prefix}encoder.layer.{i}.", f"Transformer/encoderblock_{i}/"
        attn = dst + "MultiHeadDotProductAttention_0/"
        rows += norm_rows(src + "layernorm_before.", dst + "LayerNorm_0/", h)
        rows += norm_rows(src + "layernorm_after.", dst + "LayerNorm_1/", h)
        for name in ("query", "key", "value"):
            rows.append((f"{src}attention.attention.{name}.weight", f"{attn}{name}/kernel",
                         "attn_in", (h, h)))
            if config["qkv_bias"]:
                rows.append((f"{src}attention.attention.{name}.bias", f"{attn}{name}/bias",
                             "attn_bias", (h,)))
        rows += [(src + "attention.output.dense.weight", attn + "out/kernel", "attn_out", (h, h)),
                 (src + "attention.output.dense.bias", attn + "out/bias", "same", (h,)),
                 (src + "intermediate.dense.weight", dst + "MlpBlock_0/Dense_0/kernel", "linear",
                  (mlp, h)),
                 (src + "intermediate.dense.bias", dst + "MlpBlock_0/Dense_0/bias", "same",
                  (mlp,)),
                 (src + "output.dense.weight", dst + "MlpBlock_0/Dense_1/kernel", "linear",
                  (h, mlp)),
                 (src + "output.dense.bias", dst + "MlpBlock_0/Dense_1/bias", "same", (h,))]
    rows += norm_rows(prefix + "layernorm.", "Transformer/encoder_norm/", h)
    if pooler:
        size = config["pooler_output_size"]
        rows += [(prefix + "pooler.dense.weight", "pre_logits/kernel", "linear", (size, h)),
                 (prefix + "pooler.dense.bias", "pre_logits/bias", "same", (size,))]
    if classifier:
        c = config["num_labels"]
        rows += [("classifier.weight", "head/kernel", "linear", (c, h)),
                 ("classifier.bias", "head/bias", "same", (c,))]
    return rows


def read_hf_flat(directory: str) -> tuple[dict[str, np.ndarray], dict]:
    """(the checkpoint in big_vision's flat per-layer layout, float32; config), after the HF
    checks. A classifier checkpoint's names start with `vit.` (its unused pooler is dropped)."""
    directory = directory.rstrip("/")
    config = read_config(directory)
    tensors = read_safetensors(directory)
    classifier = any(k.startswith("vit.") for k in tensors) or "classifier.weight" in tensors
    prefix = "vit." if classifier else ""
    if classifier:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("vit.pooler.")}
    elif "pooler.dense.weight" in tensors and config["pooler_act"] != "tanh":
        raise ClassifierError(f"{directory}: config.json pooler_act {config['pooler_act']!r} "
                              "is not tanh (big_vision's pre_logits)")
    rows = _table(config, prefix, classifier and config["num_labels"] > 0,
                  not classifier and "pooler.dense.weight" in tensors)
    check_tensors(tensors, rows, directory, WHAT, ClassifierError)
    heads = config["num_attention_heads"]
    flat = {}
    for hf, bv, kind, _ in rows:
        flat.update(to_big_vision(kind, np.asarray(tensors[hf], np.float32), heads, bv))
    return flat, config


def class_names(config: dict) -> tuple[str, ...]:
    """config.json's id2label in head order; () when absent or only HF's `LABEL_i` placeholders."""
    id2label = config.get("id2label") or {}
    names = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    return () if all(_PLACEHOLDER.match(n) for n in names) else names


def load_params(directory: str, dtype=np.float32) -> tuple[dict, ViTConfig, tuple[str, ...]]:
    """(parameter tree, config, class names from config.json) of a Hugging Face directory."""
    directory = directory.rstrip("/")
    flat, config = read_hf_flat(directory)
    flat = checkpoint.canonicalize(flat, directory)
    try:
        cfg = checkpoint.infer_config(flat, directory)
    except ValueError as err:  # ViTConfig's own checks
        raise ClassifierError(f"{directory}: {err}") from None
    check_layout(flat, checkpoint.param_shapes(cfg), checkpoint.WHAT, directory)
    cfg = dataclasses.replace(cfg, gelu_approximate=config["hidden_act"] in _TANH,
                              layer_norm_eps=float(config["layer_norm_eps"]))
    tree = bv_npz.unflatten({k: np.asarray(flat[k], dtype=dtype) for k in sorted(flat)})
    return tree, cfg, class_names(config) if cfg.num_classes else ()


def write_hf_checkpoint(directory: str, params: dict, cfg: ViTConfig,
                        names: tuple[str, ...] = ()) -> str:
    """A `ViTForImageClassification` directory (config.json + model.safetensors) of `params`
    (scanned big_vision tree), through the same table the reader uses; for tests."""
    from safetensors.numpy import save
    if not (cfg.pool == "tok" and cfg.posemb_with_cls and cfg.num_classes and cfg.norm_bias
            and not (cfg.parallel_block or cfg.qk_norm or cfg.representation_size)):
        raise ValueError(f"HF ViTForImageClassification has no equivalent of {cfg}")
    config = dict(model_type="vit", architectures=["ViTForImageClassification"],
                  hidden_size=cfg.width, num_hidden_layers=cfg.depth,
                  num_attention_heads=cfg.num_heads, intermediate_size=cfg.mlp_dim,
                  hidden_act="gelu_pytorch_tanh" if cfg.gelu_approximate else "gelu",
                  layer_norm_eps=cfg.layer_norm_eps, image_size=cfg.image_size,
                  patch_size=cfg.patch_size, num_channels=3, qkv_bias=cfg.qkv_bias,
                  id2label={str(i): (names[i] if names else f"LABEL_{i}")
                            for i in range(cfg.num_classes)})
    flat = unstack_layers(bv_npz.flatten(params), checkpoint.BLOCKS,
                          lambda i: f"Transformer/encoderblock_{i}/")
    rows = _table({**DEFAULTS, **config, "num_labels": cfg.num_classes}, "vit.", True, False)
    tensors = {hf: np.ascontiguousarray(to_hugging_face(kind, flat, bv, shape), np.float32)
               for hf, bv, kind, shape in rows}
    fileio.atomic_write_json(fileio.join(directory, CONFIG), config)
    fileio.atomic_write_bytes(fileio.join(directory, WEIGHTS), save(tensors))
    return directory
