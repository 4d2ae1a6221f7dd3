"""OWL-ViT checkpoints in the authors' format: scenic's flax checkpoint, a msgpack file written by
`flax.training.checkpoints.save_checkpoint` (the released ones are named like
`clip_vit_b32_b0203fc`, no extension), read as scenic's `load_variables` does: the `params`
(or pre-Optax `optimizer/target`) subtree of the restored state, old names fixed
(`resblocks.N` -> `resblocks_N`; `ln_1`/`ln_2` -> `ln_0`/`ln_1`).

Sizes are read off the shapes; then every array must be present, float and of the expected
shape, and nothing may be left over but the few arrays scenic itself drops (`IGNORED`). The error
is one line naming the offending arrays. Never unpickles anything: msgpack holds arrays only.
"""
from __future__ import annotations

import re

import numpy as np

from tessera import fileio
from tessera.models.owlvit.configs import OwlViTConfig
from tessera.models.paligemma import checkpoint as bv_npz

VISUAL, TEXT = "backbone/clip/visual/", "backbone/clip/text/"
# CLIP's contrastive temperature (unused by detection) and the class-head padding that scenic's
# `load` pops; accepted and dropped
IGNORED = ("backbone/clip/logit_scale", "class_head/padding", "class_head/padding_bias")
_SHOWN = 6
_OLD_BLOCK = re.compile(r"/resblocks\.(\d+)/")


class OwlViTCheckpointError(bv_npz.CheckpointError):
    """The file is not an OWL-ViT checkpoint this model can run, and which arrays say so."""


def _block(prefix: str, width: int, heads: int) -> dict[str, tuple[int, ...]]:
    hd = width // heads
    shapes = {}
    for name in ("query", "key", "value"):
        shapes[f"{prefix}attn/{name}/kernel"] = (width, heads, hd)
        shapes[f"{prefix}attn/{name}/bias"] = (heads, hd)
    shapes[f"{prefix}attn/out/kernel"] = (heads, hd, width)
    shapes[f"{prefix}attn/out/bias"] = (width,)
    for norm in ("ln_0", "ln_1"):
        shapes[f"{prefix}{norm}/scale"] = shapes[f"{prefix}{norm}/bias"] = (width,)
    shapes.update(_dense(f"{prefix}mlp/c_fc/", width, 4 * width))
    shapes.update(_dense(f"{prefix}mlp/c_proj/", 4 * width, width))
    return shapes


def _norm(prefix: str, width: int) -> dict:
    return {prefix + "scale": (width,), prefix + "bias": (width,)}


def _dense(prefix: str, n_in: int, n_out: int) -> dict:
    return {prefix + "kernel": (n_in, n_out), prefix + "bias": (n_out,)}


def param_shapes(cfg: OwlViTConfig) -> dict[str, tuple[int, ...]]:
    """Every array of the model and its shape, scenic names (without `params/`)."""
    w, t = cfg.vision_width, cfg.text_width
    shapes = {VISUAL + "conv1/kernel": (cfg.patch_size, cfg.patch_size, 3, w),
              VISUAL + "class_embedding": (w,),
              VISUAL + "positional_embedding": (cfg.num_patches + 1, w)}
    shapes.update(_norm(VISUAL + "ln_pre/", w) | _norm(VISUAL + "ln_post/", w))
    for i in range(cfg.vision_depth):
        shapes.update(_block(f"{VISUAL}transformer/resblocks_{i}/", w, cfg.vision_heads))
    shapes.update({TEXT + "token_embedding/embedding": (cfg.vocab_size, t),
                   TEXT + "positional_embedding": (cfg.seq_len, t),
                   TEXT + "text_projection/kernel": (t, cfg.embed_dim)})
    shapes.update(_norm(TEXT + "ln_final/", t))
    for i in range(cfg.text_depth):
        shapes.update(_block(f"{TEXT}transformer/resblocks_{i}/", t, cfg.text_heads))
    shapes.update(_norm("backbone/merged_class_token/", w))
    shapes.update(_dense("class_head/Dense_0/", w, cfg.embed_dim))
    for name in ("logit_shift", "logit_scale"):
        shapes.update(_dense(f"class_head/{name}/", w, 1))
    for i, out in enumerate((w, w, 4)):
        shapes.update(_dense(f"obj_box_head/Dense_{i}/", w, out))
    return shapes


def _shape(flat: dict, key: str, ndim: int) -> tuple[int, ...]:
    if key not in flat:
        raise OwlViTCheckpointError(f"missing {key} (cannot read the model size from it)")
    if np.ndim(flat[key]) != ndim:
        raise OwlViTCheckpointError(f"wrong shape {key}: {np.shape(flat[key])}, "
                                    f"expected {ndim} dims")
    return np.shape(flat[key])


def _depth(flat: dict, tower: str) -> int:
    pattern = re.compile(rf"^{tower}transformer/resblocks_(\d+)/")
    layers = [int(m.group(1)) for k in flat if (m := pattern.match(k))]
    return max(layers) + 1 if layers else 0


def infer_config(flat: dict, **options) -> OwlViTConfig:
    """Model sizes from the arrays; `options` are the format's settings (exact_gelu, eps)."""
    p, _, _, width = _shape(flat, VISUAL + "conv1/kernel", 4)
    positions = _shape(flat, VISUAL + "positional_embedding", 2)[0] - 1
    grid = int(round(np.sqrt(positions)))
    if grid * grid != positions:
        raise OwlViTCheckpointError(f"{VISUAL}positional_embedding has {positions} patch "
                                    "positions, not a square grid")
    block = "transformer/resblocks_0/attn/query/kernel"
    vocab, text_width = _shape(flat, TEXT + "token_embedding/embedding", 2)
    return OwlViTConfig(
        patch_size=p, image_size=grid * p, vision_width=width, vision_depth=_depth(flat, VISUAL),
        vision_heads=_shape(flat, VISUAL + block, 3)[1], text_width=text_width,
        text_depth=_depth(flat, TEXT), text_heads=_shape(flat, TEXT + block, 3)[1],
        vocab_size=vocab, seq_len=_shape(flat, TEXT + "positional_embedding", 2)[0],
        embed_dim=_shape(flat, TEXT + "text_projection/kernel", 2)[1], **options)


def _listed(kind: str, names: list[str]) -> str:
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return f"{kind} " + ", ".join(names[:_SHOWN]) + more


def check_complete(flat: dict, cfg: OwlViTConfig, source: str = "") -> None:
    """Raises OwlViTCheckpointError (one line) naming missing, unexpected, misshapen or non-float
    arrays."""
    expected = param_shapes(cfg)
    missing = sorted(set(expected) - set(flat))
    unexpected = sorted(set(flat) - set(expected))
    common = set(expected) & set(flat)
    misshapen = sorted(f"{k} {tuple(np.shape(flat[k]))} != expected {expected[k]}"
                       for k in common if tuple(np.shape(flat[k])) != expected[k])
    not_float = sorted(f"{k} ({np.asarray(flat[k]).dtype})" for k in common
                       if not np.issubdtype(np.asarray(flat[k]).dtype, np.floating)
                       and np.asarray(flat[k]).dtype.name != "bfloat16")
    problems = [_listed(kind, names) for kind, names in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen),
        ("not float", not_float)) if names]
    if problems:
        where = f"{source}: " if source else ""
        raise OwlViTCheckpointError(f"{where}not an OWL-ViT checkpoint: " + "; ".join(problems))


def canonicalize(flat: dict) -> dict:
    """Old scenic names -> current ones; the arrays scenic drops, dropped."""
    out = {}
    for key, value in flat.items():
        out[_OLD_BLOCK.sub(r"/resblocks_\1/", key)] = value
    blocks = {k.rsplit("/", 2)[0] for k in out if "/resblocks_" in k}
    for block in blocks:  # pre-2022 blocks: ln_1 before attention, ln_2 before the MLP
        if f"{block}/ln_2/scale" in out and f"{block}/ln_0/scale" not in out:
            for leaf in ("scale", "bias"):
                out[f"{block}/ln_0/{leaf}"] = out.pop(f"{block}/ln_1/{leaf}")
                out[f"{block}/ln_1/{leaf}"] = out.pop(f"{block}/ln_2/{leaf}")
    return {k: v for k, v in out.items() if k not in IGNORED}


def from_flat(flat: dict, source: str = "", dtype=np.float32, **options):
    """Checks scenic flat arrays and builds (tree, config); shared with the HF reader."""
    flat = canonicalize(flat)
    try:
        cfg = infer_config(flat, **options)
    except OwlViTCheckpointError as err:
        raise OwlViTCheckpointError(f"{source}: {err}" if source else str(err)) from None
    check_complete(flat, cfg, source)
    return bv_npz.unflatten({k: np.asarray(v, dtype) for k, v in sorted(flat.items())}), cfg


def params_from_state(state: dict) -> dict:
    """The model parameters of a restored scenic train state (or of a bare params tree)."""
    if "optimizer" in state:  # pre-Optax checkpoints
        return state["optimizer"]["target"]
    if "params" in state:
        return state["params"]
    if "backbone" in state:
        return state
    raise OwlViTCheckpointError("no params (or optimizer/target) in the checkpoint; top-level "
                                f"keys: {', '.join(sorted(state)[:8])}")


def load_checkpoint(path: str, dtype=np.float32) -> tuple[dict, OwlViTConfig]:
    """Reads a scenic OWL-ViT flax checkpoint (local or gs://); returns (tree, config).

    Raises:
      OwlViTCheckpointError: not msgpack, no params, or missing/unexpected/misshapen arrays.
    """
    from flax import serialization
    try:
        state = serialization.msgpack_restore(fileio.read_bytes(path))
    except Exception as err:  # noqa: BLE001 - msgpack raises several unrelated types
        raise OwlViTCheckpointError(f"{path}: not a flax msgpack checkpoint ({err})") from None
    if not isinstance(state, dict):
        raise OwlViTCheckpointError(f"{path}: not a flax checkpoint (a {type(state).__name__})")
    try:
        params = params_from_state(state)
    except OwlViTCheckpointError as err:
        raise OwlViTCheckpointError(f"{path}: {err}") from None
    return from_flat(bv_npz.flatten(params), path, dtype)


def save_checkpoint(path: str, params: dict, *, step: int = 0) -> str:
    """Writes `params` as scenic's trainer does: a msgpack train state with `params` and `step`."""
    from flax import serialization
    state = {"params": params, "global_step": np.asarray(step, np.int32)}
    fileio.atomic_write_bytes(path, serialization.msgpack_serialize(state))
    return path
