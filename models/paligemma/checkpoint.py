"""Loads big_vision PaliGemma `.npz` checkpoints into the parameter tree of `models.paligemma`.

A big_vision npz is a flat mapping from '/'-joined names to arrays (`utils.load_checkpoint_np` +
`recover_tree`), optionally under `params/` (optax state) or `opt/target/`. Both layer layouts are
accepted and canonicalised to the scanned one:

  img/Transformer/encoderblock_{i}/...  (python loop)  or  img/Transformer/encoderblock/... [L, ...]
  llm/layers/{i}/...                    (python loop)  or  llm/layers/... [L, ...]

The model sizes are read off the array shapes, every expected array must be present with the
expected shape, and anything left over is an error: a silently ignored weight is a wrong model.
bfloat16 arrays, which numpy stores as 2-byte void, are recovered as in big_vision's
`recover_dtype`. Never unpickles (allow_pickle=False).
"""
from __future__ import annotations

import dataclasses
import io
import re

import ml_dtypes
import numpy as np

from tessera.models.paligemma.configs import PaliGemmaConfig, TextConfig, VisionConfig, gemma2_text

PREFIXES = ("params/", "opt/target/")
_VIT_LOOP = re.compile(r"^img/Transformer/encoderblock_(\d+)/(.+)$")
_LLM_LOOP = re.compile(r"^llm/layers/(\d+)/(.+)$")


class CheckpointError(ValueError):
    """The file is not a PaliGemma checkpoint this model can run, and why."""


def param_shapes(cfg: PaliGemmaConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model (scanned layout) and its shape, big_vision names."""
    v, t = cfg.vision, cfg.text
    w, m, n, lv, p = v.width, v.mlp_dim, v.num_heads, v.depth, v.patch_size
    hd = w // n
    blk = "img/Transformer/encoderblock/"
    shapes = {
        "img/embedding/kernel": (p, p, 3, w), "img/embedding/bias": (w,),
        "img/pos_embedding": (1, v.num_patches, w),
        "img/Transformer/encoder_norm/scale": (w,), "img/Transformer/encoder_norm/bias": (w,),
        "img/head/kernel": (w, t.width), "img/head/bias": (t.width,),
        blk + "MlpBlock_0/Dense_0/kernel": (lv, w, m), blk + "MlpBlock_0/Dense_0/bias": (lv, m),
        blk + "MlpBlock_0/Dense_1/kernel": (lv, m, w), blk + "MlpBlock_0/Dense_1/bias": (lv, w),
        blk + "MultiHeadDotProductAttention_0/out/kernel": (lv, n, hd, w),
        blk + "MultiHeadDotProductAttention_0/out/bias": (lv, w),
    }
    for ln in ("LayerNorm_0", "LayerNorm_1"):
        shapes[f"{blk}{ln}/scale"] = shapes[f"{blk}{ln}/bias"] = (lv, w)
    for name in ("query", "key", "value"):
        shapes[f"{blk}MultiHeadDotProductAttention_0/{name}/kernel"] = (lv, w, n, hd)
        shapes[f"{blk}MultiHeadDotProductAttention_0/{name}/bias"] = (lv, n, hd)
    d, lt, h = t.width, t.depth, t.head_dim
    shapes.update({
        "llm/embedder/input_embedding": (t.vocab_size, d),
        "llm/final_norm/scale": (d,),
        "llm/layers/pre_attention_norm/scale": (lt, d),
        "llm/layers/pre_ffw_norm/scale": (lt, d),
        "llm/layers/attn/attn_vec_einsum/w": (lt, t.num_heads, h, d),
        "llm/layers/mlp/gating_einsum": (lt, 2, d, t.mlp_dim),
        "llm/layers/mlp/linear": (lt, t.mlp_dim, d),
    })
    if t.post_norms:  # Gemma 2 (PaliGemma 2)
        shapes["llm/layers/post_attention_norm/scale"] = (lt, d)
        shapes["llm/layers/post_ffw_norm/scale"] = (lt, d)
    if t.num_kv_heads == t.num_heads:
        shapes["llm/layers/attn/qkv_einsum/w"] = (lt, 3, t.num_heads, d, h)
    else:
        shapes["llm/layers/attn/q_einsum/w"] = (lt, t.num_heads, d, h)
        shapes["llm/layers/attn/kv_einsum/w"] = (lt, 2, t.num_kv_heads, d, h)
    return shapes


def recover_dtype(a: np.ndarray) -> np.ndarray:
    if a.dtype.type is np.void:
        if a.dtype.itemsize != 2:
            raise CheckpointError(f"unknown void dtype of itemsize {a.dtype.itemsize}")
        return a.view(ml_dtypes.bfloat16)
    return a


def read_npz(path_or_bytes) -> dict[str, np.ndarray]:
    """Flat {name: array} from a local path, a gs:// path (via Beam FileSystems) or bytes."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        source = io.BytesIO(path_or_bytes)
    elif "://" in str(path_or_bytes):
        from tessera.fileio import read_bytes
        source = io.BytesIO(read_bytes(path_or_bytes))
    else:
        source = path_or_bytes  # np.load reads members lazily from a local file.
    try:
        with np.load(source, allow_pickle=False) as npz:
            return {k: recover_dtype(npz[k]) for k in npz.files}
    except ValueError as e:  # object arrays would need pickle
        raise CheckpointError(f"cannot read {path_or_bytes!r} without pickle: {e}") from e


def _strip_prefix(flat: dict) -> dict:
    for prefix in PREFIXES:
        if any(k.startswith(prefix) for k in flat):
            return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in flat.items()}
    return dict(flat)


def _stack_loop_layers(flat: dict, pattern: re.Pattern, scanned_prefix: str) -> dict:
    """Stacks per-layer arrays `<...>_{i}/rest` into `scanned_prefix + rest` with a layer axis."""
    per_layer: dict[str, dict[int, np.ndarray]] = {}
    out = {}
    for key, value in flat.items():
        match = pattern.match(key)
        if match:
            per_layer.setdefault(match.group(2), {})[int(match.group(1))] = value
        else:
            out[key] = value
    if not per_layer:
        return out
    if any(k.startswith(scanned_prefix) for k in out):
        raise CheckpointError(f"checkpoint mixes per-layer and scanned ({scanned_prefix}) arrays")
    depth = 1 + max(i for layers in per_layer.values() for i in layers)
    for rest, layers in sorted(per_layer.items()):
        missing = sorted(set(range(depth)) - set(layers))
        if missing:
            raise CheckpointError(f"{scanned_prefix}{rest}: layers {missing} missing of {depth}")
        out[scanned_prefix + rest] = np.stack([layers[i] for i in range(depth)])
    return out


def canonicalize(flat: dict) -> dict[str, np.ndarray]:
    """Flat checkpoint -> flat scanned-layout dict with `img/...` and `llm/...` names."""
    flat = _strip_prefix(flat)
    flat = _stack_loop_layers(flat, _VIT_LOOP, "img/Transformer/encoderblock/")
    return _stack_loop_layers(flat, _LLM_LOOP, "llm/layers/")


def _shape(flat, key):
    if key not in flat:
        raise CheckpointError(f"missing {key!r}; cannot infer the model size. Keys present: "
                              f"{sorted(flat)[:20]}{' ...' if len(flat) > 20 else ''}")
    return flat[key].shape


def infer_config(flat: dict[str, np.ndarray]) -> PaliGemmaConfig:
    """Model sizes from the arrays of a canonical (scanned) checkpoint."""
    blk = "img/Transformer/encoderblock/"
    p, _, _, w = _shape(flat, "img/embedding/kernel")
    n_patches = _shape(flat, "img/pos_embedding")[1]
    grid = int(round(np.sqrt(n_patches)))
    if grid * grid != n_patches:
        raise CheckpointError(f"img/pos_embedding has {n_patches} positions, not a square grid")
    vision = VisionConfig(
        width=w, depth=_shape(flat, blk + "LayerNorm_0/scale")[0],
        mlp_dim=_shape(flat, blk + "MlpBlock_0/Dense_0/kernel")[-1],
        num_heads=_shape(flat, blk + "MultiHeadDotProductAttention_0/query/kernel")[-2],
        patch_size=p, image_size=grid * p)
    vocab, d = _shape(flat, "llm/embedder/input_embedding")
    if "llm/layers/attn/qkv_einsum/w" in flat:
        _, _, n, _, h = flat["llm/layers/attn/qkv_einsum/w"].shape
        kv = n
    else:
        _, n, _, h = _shape(flat, "llm/layers/attn/q_einsum/w")
        kv = _shape(flat, "llm/layers/attn/kv_einsum/w")[2]
    sizes = dict(width=d, depth=_shape(flat, "llm/layers/pre_attention_norm/scale")[0],
                 mlp_dim=_shape(flat, "llm/layers/mlp/gating_einsum")[-1], num_heads=n,
                 num_kv_heads=kv, head_dim=h, vocab_size=vocab)
    # Post-norms mark a Gemma 2 decoder (PaliGemma 2); its soft caps, window and query scale are
    # not arrays, so they are PaliGemma 2's (configs.gemma2_text)
    text = (gemma2_text(**sizes) if "llm/layers/post_attention_norm/scale" in flat
            else TextConfig(**sizes))
    return PaliGemmaConfig(vision=vision, text=text)


def check_complete(flat: dict[str, np.ndarray], cfg: PaliGemmaConfig) -> None:
    """Raises CheckpointError naming every missing, unexpected or misshapen array."""
    expected = param_shapes(cfg)
    missing = sorted(set(expected) - set(flat))
    unexpected = sorted(set(flat) - set(expected))
    misshapen = sorted(f"{k}: {flat[k].shape} != expected {expected[k]}"
                       for k in set(expected) & set(flat) if tuple(flat[k].shape) != expected[k])
    if missing or unexpected or misshapen:
        lines = ([f"missing: {k}" for k in missing] + [f"unexpected: {k}" for k in unexpected]
                 + [f"wrong shape: {k}" for k in misshapen])
        raise CheckpointError("checkpoint does not match the PaliGemma layout:\n  "
                              + "\n  ".join(lines))


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_checkpoint(path_or_bytes, dtype=np.float32,
                    expect: PaliGemmaConfig | None = None) -> tuple[dict, PaliGemmaConfig]:
    """Reads a big_vision npz; returns ({"img": ..., "llm": ...} numpy tree, inferred config).

    Args:
      path_or_bytes: local or gs:// path of the .npz, or its bytes.
      dtype: dtype the parameters are cast to (float32 on CPU; bfloat16 halves GPU memory).
      expect: if given, the inferred config must equal it.

    Raises:
      CheckpointError: unreadable file, missing/unexpected/misshapen arrays, or a different size.
    """
    return from_flat(read_npz(path_or_bytes), dtype, expect)


def from_flat(flat: dict, dtype=np.float32, expect: PaliGemmaConfig | None = None,
              text_settings: dict | None = None) -> tuple[dict, PaliGemmaConfig]:
    """Checks big_vision flat arrays (either layer layout, any prefix) and builds the tree;
    shared by the npz reader and the Hugging Face reader (models/paligemma/hf.py), which passes
    the decoder settings its config.json states (`text_settings`: Gemma 2's caps and window)."""
    flat = canonicalize(flat)
    cfg = infer_config(flat)
    if text_settings:
        cfg = dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, **text_settings))
    if expect is not None and cfg != expect:
        raise CheckpointError(f"checkpoint is {cfg}, expected {expect}")
    check_complete(flat, cfg)
    # Cast one array at a time, dropping the original, so a 3B load peaks near one copy.
    return unflatten({k: np.asarray(flat.pop(k), dtype=dtype) for k in sorted(flat)}), cfg


def save_checkpoint(path, params: dict, *, scanned: bool = True, prefix: str = "") -> None:
    """Writes `params` as a big_vision-style npz (tests and tools); `scanned=False` writes the
    python-loop layout (`encoderblock_{i}`, `layers/{i}`) that older checkpoints use."""
    flat = flatten(params)
    if not scanned:
        flat = unstack_layers(flat)
    with open(path, "wb") as f:
        np.savez(f, **{prefix + k: np.asarray(v) for k, v in flat.items()})


def unstack_loop_layers(flat: dict, scanned_prefix: str, per_layer) -> dict:
    """The inverse of `_stack_loop_layers`: `scanned_prefix + rest` [L, ...] arrays ->
    `per_layer(i) + rest` (shared by every big_vision family's writer)."""
    out = {}
    for key, value in flat.items():
        if key.startswith(scanned_prefix):
            rest = key[len(scanned_prefix):]
            out.update({per_layer(i) + rest: value[i] for i in range(value.shape[0])})
        else:
            out[key] = value
    return out


def unstack_layers(flat: dict) -> dict:
    """Scanned PaliGemma arrays -> the python-loop layout (`encoderblock_{i}/`, `layers/{i}/`)."""
    flat = unstack_loop_layers(flat, "img/Transformer/encoderblock/",
                               lambda i: f"img/Transformer/encoderblock_{i}/")
    return unstack_loop_layers(flat, "llm/layers/", lambda i: f"llm/layers/{i}/")
