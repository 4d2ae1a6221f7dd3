"""Reads and writes ViT classifier `.npz` checkpoints in both published layouts.

big_vision (`vit.py`; also what timm calls big_vision), optionally under `params/` or
`opt/target/`, per-layer `encoderblock_{i}` or scanned `encoderblock` with a layer axis:

  embedding/{kernel,bias}  pos_embedding  [cls]  [MAPHead_0/...]  [pre_logits]  [head]
  Transformer/encoderblock_{i}/{LayerNorm_0, MultiHeadDotProductAttention_0, LayerNorm_1,
                                MlpBlock_0/Dense_{0,1}}  Transformer/encoder_norm

original ViT / AugReg (google-research/vision_transformer), the same but for
`Transformer/posembed_input/pos_embedding` (with a position for `cls`) and the block names
`LayerNorm_0, MultiHeadDotProductAttention_1, LayerNorm_2, MlpBlock_3`.

Both are canonicalised to the scanned big_vision names, which are the model's parameter tree.
Sizes and switches are read off the arrays (a block without `LayerNorm_1` is a parallel block,
`query_ln` means QK norm, a missing `query/bias` no QKV bias); then every array must be present,
float and of the expected shape, and nothing may be left over.
"""
from __future__ import annotations

import math
import re

import numpy as np

from tessera.models.image_classifier import ClassifierCheckpointError as ClassifierError
from tessera.models.image_classifier import (check_layout, read_flat, shape_of, stack_layers,
                                             unstack_layers, write_npz)
from tessera.models.paligemma import checkpoint as bv_npz
from tessera.models.vit.configs import ViTConfig

BLOCKS = "Transformer/encoderblock/"
MHA = BLOCKS + "MultiHeadDotProductAttention_0/"
ORIGINAL_POSEMB = "Transformer/posembed_input/pos_embedding"
_LOOP = re.compile(r"^Transformer/encoderblock_(\d+)/(.+)$")
# original ViT block names -> big_vision's (the same modules, numbered in creation order)
_ORIGINAL_NAMES = {"MultiHeadDotProductAttention_1": "MultiHeadDotProductAttention_0",
                   "LayerNorm_2": "LayerNorm_1", "MlpBlock_3": "MlpBlock_0"}
_ORIGINAL_BLOCK = re.compile(r"^(Transformer/encoderblock(?:_\d+)?/)(" +
                             "|".join(_ORIGINAL_NAMES) + r")/")
WHAT = "a ViT classifier checkpoint"


def _norm(prefix: str, shape: tuple, bias: bool = True) -> dict:
    return {prefix + "scale": shape, **({prefix + "bias": shape} if bias else {})}


def _attention(prefix: str, width: int, heads: int, layers: tuple = (), *, bias: bool = True,
               qk_norm: bool = False) -> dict:
    hd = width // heads
    shapes = {f"{prefix}{n}/kernel": layers + (width, heads, hd) for n in ("query", "key", "value")}
    if bias:
        shapes.update({f"{prefix}{n}/bias": layers + (heads, hd)
                       for n in ("query", "key", "value")})
    if qk_norm:
        shapes.update({f"{prefix}query_ln/scale": layers + (hd,),
                       f"{prefix}key_ln/scale": layers + (hd,)})
    shapes.update({f"{prefix}out/kernel": layers + (heads, hd, width),
                   f"{prefix}out/bias": layers + (width,)})
    return shapes


def _mlp(prefix: str, width: int, mlp_dim: int, layers: tuple = ()) -> dict:
    return {prefix + "Dense_0/kernel": layers + (width, mlp_dim),
            prefix + "Dense_0/bias": layers + (mlp_dim,),
            prefix + "Dense_1/kernel": layers + (mlp_dim, width),
            prefix + "Dense_1/bias": layers + (width,)}


def param_shapes(cfg: ViTConfig) -> dict[str, tuple[int, ...]]:
    """Every array of the model (scanned big_vision names) and its shape."""
    w, p, layers = cfg.width, cfg.patch_size, (cfg.depth,)
    shapes = {"embedding/kernel": (p, p, 3, w), "embedding/bias": (w,),
              "pos_embedding": (1, cfg.num_positions, w)}
    shapes.update(_norm(BLOCKS + "LayerNorm_0/", layers + (w,), cfg.norm_bias))
    if not cfg.parallel_block:
        shapes.update(_norm(BLOCKS + "LayerNorm_1/", layers + (w,), cfg.norm_bias))
    shapes.update(_attention(MHA, w, cfg.num_heads, layers, bias=cfg.qkv_bias,
                             qk_norm=cfg.qk_norm))
    shapes.update(_mlp(BLOCKS + "MlpBlock_0/", w, cfg.mlp_dim, layers))
    shapes.update(_norm("Transformer/encoder_norm/", (w,), cfg.norm_bias))
    if cfg.pool == "tok":
        shapes["cls"] = (1, 1, w)
    elif cfg.pool == "map":
        shapes["MAPHead_0/probe"] = (1, 1, w)
        shapes.update(_attention("MAPHead_0/MultiHeadDotProductAttention_0/", w, cfg.num_heads))
        shapes.update(_norm("MAPHead_0/LayerNorm_0/", (w,)))
        shapes.update(_mlp("MAPHead_0/MlpBlock_0/", w, cfg.mlp_dim))
    if cfg.representation_size:
        shapes.update({"pre_logits/kernel": (w, cfg.representation_size),
                       "pre_logits/bias": (cfg.representation_size,)})
    if cfg.num_classes:
        shapes.update({"head/kernel": (cfg.embed_dim, cfg.num_classes),
                       "head/bias": (cfg.num_classes,)})
    return shapes


def fan_in(name: str, shape: tuple) -> int:
    """Inputs per output of a kernel (q/k/v kernels are [.., in, heads, head_dim])."""
    if name.rsplit("/", 2)[-2] in ("query", "key", "value"):
        return shape[-3]
    return math.prod(shape[1 if name.startswith(BLOCKS) else 0:-1])


def canonicalize(flat: dict, source: str = "") -> dict[str, np.ndarray]:
    """Either layout (prefix already dropped) -> scanned big_vision names."""
    if ORIGINAL_POSEMB in flat:
        flat = {_ORIGINAL_BLOCK.sub(lambda m: m.group(1) + _ORIGINAL_NAMES[m.group(2)] + "/", k)
                if k != ORIGINAL_POSEMB else "pos_embedding": v for k, v in flat.items()}
    return stack_layers(flat, _LOOP, BLOCKS, source)


def infer_config(flat: dict[str, np.ndarray], source: str = "") -> ViTConfig:
    """Sizes and switches from the arrays of a canonical checkpoint."""
    patch, _, _, width = shape_of(flat, "embedding/kernel", 4, source)
    positions = shape_of(flat, "pos_embedding", 3, source)[1]
    pool = ("map" if any(k.startswith("MAPHead_0/") for k in flat)
            else "tok" if "cls" in flat else "gap")
    with_cls = pool == "tok" and math.isqrt(positions - 1) ** 2 == positions - 1 > 0
    grid = math.isqrt(positions - with_cls)
    if grid * grid != positions - with_cls:
        raise ClassifierError(f"{source}: pos_embedding has {positions} positions, "
                              f"not a square grid{' (+ cls)' if pool == 'tok' else ''}")
    heads = shape_of(flat, MHA + "query/kernel", 4, source)[-2]
    rep = shape_of(flat, "pre_logits/kernel", 2, source)[-1] if "pre_logits/kernel" in flat else 0
    return ViTConfig(
        width=width, depth=shape_of(flat, BLOCKS + "LayerNorm_0/scale", 2, source)[0],
        mlp_dim=shape_of(flat, BLOCKS + "MlpBlock_0/Dense_0/kernel", 3, source)[-1],
        num_heads=heads, patch_size=patch, image_size=grid * patch,
        num_classes=shape_of(flat, "head/kernel", 2, source)[-1] if "head/kernel" in flat else 0,
        pool=pool, representation_size=rep, posemb_with_cls=with_cls,
        parallel_block=not any(k.startswith(BLOCKS + "LayerNorm_1/") for k in flat),
        qk_norm=MHA + "query_ln/scale" in flat, qkv_bias=MHA + "query/bias" in flat,
        norm_bias=BLOCKS + "LayerNorm_0/bias" in flat)


def load_checkpoint(path_or_bytes, dtype=np.float32) -> tuple[dict, ViTConfig]:
    """Reads a ViT npz (either layout); returns (parameter tree, config).

    Raises:
      ClassifierCheckpointError: unreadable file or missing/unexpected/misshapen arrays.
    """
    source = path_or_bytes if isinstance(path_or_bytes, str) else ""
    flat = canonicalize(read_flat(path_or_bytes, source), source)
    try:
        cfg = infer_config(flat, source)
    except ClassifierError:
        raise
    except ValueError as err:  # ViTConfig's own checks, e.g. width not a multiple of the heads
        raise ClassifierError(f"{source}: {err}") from None
    check_layout(flat, param_shapes(cfg), WHAT, source)
    return bv_npz.unflatten({k: np.asarray(flat[k], dtype=dtype) for k in sorted(flat)}), cfg


def save_checkpoint(path: str, params: dict, *, layout: str = "big_vision",
                    scanned: bool = False) -> None:
    """Writes `params` as a released file: "big_vision" (`params/` names, per-layer blocks unless
    `scanned`) or "original" (vision_transformer / AugReg names, no prefix, per-layer)."""
    flat = bv_npz.flatten(params)
    if layout == "original":
        if scanned or BLOCKS + "LayerNorm_1/scale" not in flat or "MAPHead_0/probe" in flat:
            raise ValueError("the original ViT layout has per-layer sequential blocks, no MAP head")
        back = {v: k for k, v in _ORIGINAL_NAMES.items()}
        flat = {(ORIGINAL_POSEMB if k == "pos_embedding" else
                 re.sub(r"^(" + BLOCKS + r")(" + "|".join(back) + ")/",
                        lambda m: m.group(1) + back[m.group(2)] + "/", k)): v
                for k, v in flat.items()}
        prefix = ""
    elif layout == "big_vision":
        prefix = "params/"
    else:
        raise ValueError(f"layout must be 'big_vision' or 'original', got {layout!r}")
    if not scanned:
        flat = unstack_layers(flat, BLOCKS, lambda i: f"Transformer/encoderblock_{i}/")
    write_npz(path, {prefix + k: v for k, v in flat.items()})
