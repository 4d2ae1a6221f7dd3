"""Loads big_vision two-tower (SigLIP / LiT) `.npz` checkpoints into `models.siglip.model`'s tree.

The layout is the one big_vision writes for `proj/image_text/two_towers.py` (optionally under
`params/`, per-layer `encoderblock_{i}` or scanned `encoderblock` with a layer axis):

  img/embedding/{kernel,bias}  img/pos_embedding  img/Transformer/encoderblock_{i}/...
  img/Transformer/encoder_norm  img/MAPHead_0/... (SigLIP) | img/cls (LiT, ViT "tok")  [img/head]
  txt/Embed_0/embedding  txt/pos_embedding  txt/Encoder_0/encoderblock_{i}/...
  txt/Encoder_0/encoder_norm  [txt/head]  t  [b]

Sizes are read off the shapes; then every array must be present, float and of the expected shape,
and nothing may be left over. The error is one line naming the offending arrays.
"""
from __future__ import annotations

import re

import numpy as np

from tessera.models.paligemma import checkpoint as bv_npz
from tessera.models.paligemma.configs import VisionConfig
from tessera.models.siglip.configs import ImageTowerConfig, TextTowerConfig, TwoTowerConfig

IMG_BLOCKS = "img/Transformer/encoderblock/"
TXT_BLOCKS = "txt/Encoder_0/encoderblock/"
_IMG_LOOP = re.compile(r"^img/Transformer/encoderblock_(\d+)/(.+)$")
_TXT_LOOP = re.compile(r"^txt/Encoder_0/encoderblock_(\d+)/(.+)$")
_MAP = "img/MAPHead_0/"
_SHOWN = 6  # arrays named per kind in an error; the rest are counted


class SiglipCheckpointError(bv_npz.CheckpointError):
    """The file is not a two-tower checkpoint this model can run, and which arrays say so."""


def _attention(prefix: str, width: int, heads: int, layers: tuple = ()) -> dict:
    hd = width // heads
    shapes = {f"{prefix}{n}/kernel": layers + (width, heads, hd) for n in ("query", "key", "value")}
    shapes.update({f"{prefix}{n}/bias": layers + (heads, hd) for n in ("query", "key", "value")})
    shapes[f"{prefix}out/kernel"] = layers + (heads, hd, width)
    shapes[f"{prefix}out/bias"] = layers + (width,)
    return shapes


def _mlp_and_norms(prefix: str, width: int, mlp_dim: int, norms, layers: tuple = ()) -> dict:
    shapes = {f"{prefix}MlpBlock_0/Dense_0/kernel": layers + (width, mlp_dim),
              f"{prefix}MlpBlock_0/Dense_0/bias": layers + (mlp_dim,),
              f"{prefix}MlpBlock_0/Dense_1/kernel": layers + (mlp_dim, width),
              f"{prefix}MlpBlock_0/Dense_1/bias": layers + (width,)}
    for norm in norms:
        shapes[f"{prefix}{norm}/scale"] = shapes[f"{prefix}{norm}/bias"] = layers + (width,)
    return shapes


def _encoder(blocks: str, width: int, depth: int, mlp_dim: int, heads: int) -> dict:
    shapes = _attention(blocks + "MultiHeadDotProductAttention_0/", width, heads, (depth,))
    shapes.update(_mlp_and_norms(blocks, width, mlp_dim, ("LayerNorm_0", "LayerNorm_1"), (depth,)))
    norm = blocks.replace("encoderblock/", "encoder_norm/")
    shapes.update({norm + "scale": (width,), norm + "bias": (width,)})
    return shapes


def param_shapes(cfg: TwoTowerConfig) -> dict[str, tuple[int, ...]]:
    """Every array of the model (scanned layout) and its shape, big_vision names."""
    v, t = cfg.image.vit, cfg.text
    shapes = {"img/embedding/kernel": (v.patch_size, v.patch_size, 3, v.width),
              "img/embedding/bias": (v.width,), "img/pos_embedding": (1, v.num_patches, v.width),
              "t": (1,)}
    shapes.update(_encoder(IMG_BLOCKS, v.width, v.depth, v.mlp_dim, v.num_heads))
    if cfg.image.pool == "map":
        shapes[_MAP + "probe"] = (1, 1, v.width)
        shapes.update(_attention(_MAP + "MultiHeadDotProductAttention_0/", v.width, v.num_heads))
        shapes.update(_mlp_and_norms(_MAP, v.width, v.mlp_dim, ("LayerNorm_0",)))
    elif cfg.image.pool == "tok":
        shapes["img/cls"] = (1, 1, v.width)
    if cfg.image.out_dim:
        shapes.update({"img/head/kernel": (v.width, cfg.image.out_dim),
                       "img/head/bias": (cfg.image.out_dim,)})
    shapes.update({"txt/Embed_0/embedding": (t.vocab_size, t.width),
                   "txt/pos_embedding": (1, t.seq_len, t.width)})
    shapes.update(_encoder(TXT_BLOCKS, t.width, t.depth, t.mlp_dim, t.num_heads))
    if t.out_dim:
        shapes.update({"txt/head/kernel": (t.width, t.out_dim), "txt/head/bias": (t.out_dim,)})
    if cfg.has_bias:
        shapes["b"] = (1,)
    return shapes


def canonicalize(flat: dict) -> dict[str, np.ndarray]:
    """Flat checkpoint -> flat scanned-layout dict without the `params/` prefix."""
    # PaliGemma's reader helpers are generic over the prefix and the per-layer name pattern.
    flat = bv_npz._strip_prefix(flat)  # noqa: SLF001
    flat = bv_npz._stack_loop_layers(flat, _IMG_LOOP, IMG_BLOCKS)  # noqa: SLF001
    return bv_npz._stack_loop_layers(flat, _TXT_LOOP, TXT_BLOCKS)  # noqa: SLF001


def _shape(flat: dict, key: str, ndim: int) -> tuple[int, ...]:
    if key not in flat:
        raise SiglipCheckpointError(f"missing {key} (cannot read the model size from it)")
    if flat[key].ndim != ndim:
        raise SiglipCheckpointError(f"wrong shape {key}: {flat[key].shape}, expected {ndim} dims")
    return flat[key].shape


def infer_config(flat: dict[str, np.ndarray]) -> TwoTowerConfig:
    """Model sizes from the arrays of a canonical (scanned) checkpoint."""
    p, _, _, width = _shape(flat, "img/embedding/kernel", 4)
    n_patches = _shape(flat, "img/pos_embedding", 3)[1]
    grid = int(round(np.sqrt(n_patches)))
    if grid * grid != n_patches:
        raise SiglipCheckpointError(
            f"img/pos_embedding has {n_patches} positions, not a square grid")
    attn = "MultiHeadDotProductAttention_0/query/kernel"
    vit = VisionConfig(width=width, depth=_shape(flat, IMG_BLOCKS + "LayerNorm_0/scale", 2)[0],
                       mlp_dim=_shape(flat, IMG_BLOCKS + "MlpBlock_0/Dense_0/kernel", 3)[-1],
                       num_heads=_shape(flat, IMG_BLOCKS + attn, 4)[-2], patch_size=p,
                       image_size=grid * p)
    pool = "map" if any(k.startswith(_MAP) for k in flat) else "tok" if "img/cls" in flat else "gap"
    img_out = _shape(flat, "img/head/kernel", 2)[-1] if "img/head/kernel" in flat else None
    vocab, txt_width = _shape(flat, "txt/Embed_0/embedding", 2)
    text = TextTowerConfig(
        width=txt_width, depth=_shape(flat, TXT_BLOCKS + "LayerNorm_0/scale", 2)[0],
        mlp_dim=_shape(flat, TXT_BLOCKS + "MlpBlock_0/Dense_0/kernel", 3)[-1],
        num_heads=_shape(flat, TXT_BLOCKS + attn, 4)[-2], vocab_size=vocab,
        seq_len=_shape(flat, "txt/pos_embedding", 3)[1],
        out_dim=_shape(flat, "txt/head/kernel", 2)[-1] if "txt/head/kernel" in flat else None)
    cfg = TwoTowerConfig(ImageTowerConfig(vit, pool, img_out), text, has_bias="b" in flat)
    if cfg.image.embed_dim != cfg.text.embed_dim:
        raise SiglipCheckpointError(f"image embeddings are {cfg.image.embed_dim}-d but text "
                                    f"embeddings {cfg.text.embed_dim}-d (img/head, txt/head)")
    return cfg


def _listed(kind: str, names: list[str]) -> str:
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return f"{kind} " + ", ".join(names[:_SHOWN]) + more


def check_complete(flat: dict[str, np.ndarray], cfg: TwoTowerConfig, source: str = "") -> None:
    """Raises SiglipCheckpointError (one line) naming missing, unexpected, misshapen or non-float
    arrays."""
    expected = param_shapes(cfg)
    missing = sorted(set(expected) - set(flat))
    unexpected = sorted(set(flat) - set(expected))
    misshapen = sorted(f"{k} {tuple(flat[k].shape)} != expected {expected[k]}"
                       for k in set(expected) & set(flat) if tuple(flat[k].shape) != expected[k])
    not_float = sorted(f"{k} ({flat[k].dtype})" for k in set(expected) & set(flat)
                       if not np.issubdtype(flat[k].dtype, np.floating)
                       and flat[k].dtype.name != "bfloat16")
    problems = [_listed(kind, names) for kind, names in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen),
        ("not float", not_float)) if names]
    if problems:
        where = f"{source}: " if source else ""
        raise SiglipCheckpointError(f"{where}not a SigLIP/LiT two-tower checkpoint: "
                                    + "; ".join(problems))


def load_checkpoint(path_or_bytes, dtype=np.float32) -> tuple[dict, TwoTowerConfig]:
    """Reads a big_vision two-tower npz; returns ({"img", "txt", "t"[, "b"]} tree, config).

    Raises:
      SiglipCheckpointError: unreadable file or missing/unexpected/misshapen arrays.
    """
    source = path_or_bytes if isinstance(path_or_bytes, str) else ""
    try:
        flat = bv_npz.read_npz(path_or_bytes)
    except bv_npz.CheckpointError as err:
        raise SiglipCheckpointError(f"{source}: {err}".replace("\n", " ")) from None
    return from_flat(flat, source, dtype)


def from_flat(flat: dict, source: str = "", dtype=np.float32) -> tuple[dict, TwoTowerConfig]:
    """Checks big_vision flat arrays (per-layer or scanned, with or without `params/`) and builds
    the tree; shared by the npz reader and the Hugging Face reader (models/siglip/hf.py)."""
    try:
        flat = canonicalize(flat)
    except bv_npz.CheckpointError as err:
        raise SiglipCheckpointError(f"{source}: {err}" if source else str(err)) from None
    try:
        cfg = infer_config(flat)
    except SiglipCheckpointError as err:
        raise SiglipCheckpointError(f"{source}: {err}" if source else str(err)) from None
    check_complete(flat, cfg, source)
    return bv_npz.unflatten({k: np.asarray(flat[k], dtype=dtype) for k in sorted(flat)}), cfg


def save_checkpoint(path: str, params: dict, *, scanned: bool = False,
                    prefix: str = "params/") -> None:
    """Writes `params` as big_vision does: `params/...` names, per-layer blocks unless `scanned`."""
    flat = bv_npz.flatten(params)
    if not scanned:
        flat = unstack_layers(flat)
    with open(path, "wb") as f:
        np.savez(f, **{prefix + k: np.asarray(v) for k, v in flat.items()})


def unstack_layers(flat: dict) -> dict:
    """Scanned `encoderblock/...` [L, ...] arrays -> per-layer `encoderblock_{i}/...` arrays."""
    for blocks in (IMG_BLOCKS, TXT_BLOCKS):
        flat = bv_npz.unstack_loop_layers(flat, blocks, lambda i, b=blocks: f"{b[:-1]}_{i}/")
    return flat
