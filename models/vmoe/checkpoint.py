"""Reads and writes V-MoE classifier checkpoints: the authors' sharded format (`sharded.py`:
PREFIX.index + PREFIX.data-*, what gs://vmoe_checkpoints publishes) or the same arrays in a flat
`.npz`. The names are the authors' flax modules (`vmoe/nn/vit_moe.py`), optionally under
`params/`:

  embedding/{kernel,bias}  [cls]  Encoder/posembed_input/pos_embedding  Encoder/encoder_norm
  Encoder/encoderblock_{i}/{LayerNorm_0, SelfAttention/{query,key,value,out}, LayerNorm_1}
    and a dense MLP  .../Mlp/Dense_{0,1}
    or a MoE        .../Moe/Router/dense/kernel [D, E]  .../Moe/Mlp/Dense_{0,1} [E, ...]
  [pre_logits]  [head]

Blocks stay per layer (dense and MoE blocks differ, so there is no one stack to scan). Sizes, the
MoE blocks and the number of experts are read off the arrays; k and the capacity are not in them
(`configs.py`). Then every array must be present, float and of the expected shape, and nothing
may be left over.
"""
from __future__ import annotations

import math
import re

import numpy as np

from tessera import fileio
from tessera.models.image_classifier import ClassifierCheckpointError as ClassifierError
from tessera.models.image_classifier import check_layout, read_flat, shape_of, write_npz
from tessera.models.paligemma import checkpoint as bv_npz
from tessera.models.vmoe import sharded
from tessera.models.vmoe.configs import VMoEConfig

POSEMB = "Encoder/posembed_input/pos_embedding"
_BLOCK = re.compile(r"^Encoder/encoderblock_(\d+)/(Moe|Mlp)/")
WHAT = "a V-MoE classifier checkpoint"


def block(i: int) -> str:
    return f"Encoder/encoderblock_{i}/"


def _dense(prefix: str, fan_in: int, fan_out: int, lead: tuple = ()) -> dict:
    return {prefix + "kernel": lead + (fan_in, fan_out), prefix + "bias": lead + (fan_out,)}


def param_shapes(cfg: VMoEConfig) -> dict[str, tuple[int, ...]]:
    """Every array of the model (the authors' names) and its shape."""
    w, p, heads = cfg.width, cfg.patch_size, cfg.num_heads
    hd = w // heads
    shapes = {"embedding/kernel": (p, p, 3, w), "embedding/bias": (w,),
              POSEMB: (1, cfg.num_tokens, w),
              "Encoder/encoder_norm/scale": (w,), "Encoder/encoder_norm/bias": (w,)}
    if cfg.pool == "tok":
        shapes["cls"] = (1, 1, w)
    for i in range(cfg.depth):
        b = block(i)
        for norm in ("LayerNorm_0", "LayerNorm_1"):
            shapes[f"{b}{norm}/scale"] = shapes[f"{b}{norm}/bias"] = (w,)
        for name in ("query", "key", "value"):
            shapes.update({f"{b}SelfAttention/{name}/kernel": (w, heads, hd),
                           f"{b}SelfAttention/{name}/bias": (heads, hd)})
        shapes.update({f"{b}SelfAttention/out/kernel": (heads, hd, w),
                       f"{b}SelfAttention/out/bias": (w,)})
        if i in cfg.moe_layers:
            experts = (cfg.num_experts,)
            shapes[f"{b}Moe/Router/dense/kernel"] = (w, cfg.num_experts)
            shapes.update(_dense(f"{b}Moe/Mlp/Dense_0/", w, cfg.mlp_dim, experts))
            shapes.update(_dense(f"{b}Moe/Mlp/Dense_1/", cfg.mlp_dim, w, experts))
        else:
            shapes.update(_dense(f"{b}Mlp/Dense_0/", w, cfg.mlp_dim))
            shapes.update(_dense(f"{b}Mlp/Dense_1/", cfg.mlp_dim, w))
    if cfg.representation_size:
        shapes.update(_dense("pre_logits/", w, cfg.representation_size))
    if cfg.num_classes:
        shapes.update(_dense("head/", cfg.embed_dim, cfg.num_classes))
    return shapes


def fan_in(name: str, shape: tuple) -> int:
    """Inputs per output of a kernel: q/k/v [in, heads, hd]; expert kernels [E, in, out]."""
    if name.rsplit("/", 2)[-2] in ("query", "key", "value"):
        return shape[-3]
    if "/Moe/Mlp/" in name:
        return shape[-2]
    return math.prod(shape[:-1])


def infer_config(flat: dict[str, np.ndarray], source: str = "", **options) -> VMoEConfig:
    """Sizes, MoE blocks and experts from the arrays; `options` set k and the routing knobs."""
    patch, _, _, width = shape_of(flat, "embedding/kernel", 4, source)
    positions = shape_of(flat, POSEMB, 3, source)[1]
    pool = "tok" if "cls" in flat else "gap"
    grid = math.isqrt(positions - (pool == "tok"))
    if grid * grid != positions - (pool == "tok"):
        raise ClassifierError(f"{source}: {POSEMB} has {positions} positions, not a square grid"
                              f"{' + cls' if pool == 'tok' else ''}")
    kinds = {}
    for key in flat:
        match = _BLOCK.match(key)
        if match:
            kinds.setdefault(int(match.group(1)), set()).add(match.group(2))
    depth = 1 + max(kinds, default=-1)
    moe = tuple(sorted(i for i, k in kinds.items() if "Moe" in k))
    if not moe:
        raise ClassifierError(f"{source}: no Encoder/encoderblock_*/Moe arrays: a dense ViT, "
                              "not a V-MoE (use vit:PATH)")
    first = block(moe[0]) + "Moe/"
    num_experts = shape_of(flat, first + "Router/dense/kernel", 2, source)[1]
    mlp_dim = shape_of(flat, first + "Mlp/Dense_0/kernel", 3, source)[2]
    heads = shape_of(flat, block(0) + "SelfAttention/query/kernel", 3, source)[1]
    options.setdefault("num_selected_experts", min(2, num_experts))
    try:
        return VMoEConfig(
            width=width, depth=depth, mlp_dim=mlp_dim, num_heads=heads, moe_layers=moe,
            num_experts=num_experts, patch_size=patch, image_size=grid * patch, pool=pool,
            num_classes=shape_of(flat, "head/kernel", 2, source)[1] if "head/kernel" in flat
            else 0,
            representation_size=(shape_of(flat, "pre_logits/kernel", 2, source)[1]
                                 if "pre_logits/kernel" in flat else 0), **options)
    except ValueError as err:  # VMoEConfig's checks, e.g. k above the number of experts
        raise ClassifierError(f"{source}: {err}") from None


def resolve(path: str) -> tuple[str, str | None]:
    """(checkpoint, labels.txt beside it or None). The checkpoint is a `.npz` or the prefix of
    a sharded checkpoint; `path` is either, a `PREFIX.index`, or a directory holding one.

    Raises:
      FileNotFoundError: nothing, or more than one checkpoint, at `path`.
    """
    path = path.rstrip("/")
    if path.endswith(".index"):
        path = path[:-len(".index")]
    if path.endswith(".npz") or fileio.exists(path + ".index"):
        found = path
    else:
        found = sorted({m.path[:-len(".index")] if m.path.endswith(".index") else m.path
                        for pattern in ("*.index", "*.npz")
                        for m in fileio.match_paths(fileio.join(path, pattern))})
        if len(found) != 1:
            raise FileNotFoundError(f"expected a V-MoE checkpoint (PREFIX.index with its data "
                                    f"shards, or one .npz) at {path}, found {found or 'none'}")
        found = found[0]
    directory = found.rsplit("/", 1)[0] if "/" in found else "."
    labels = fileio.join(directory, "labels.txt")
    return found, labels if fileio.exists(labels) else None


def weights_file(path: str) -> str:
    """The file a run manifest checksums: the `.npz`, or the first data shard."""
    found, _ = resolve(path)
    if found.endswith(".npz"):
        return found
    return sorted(m.path for m in fileio.match_paths(found + ".data-*"))[0]


def read_any(checkpoint: str) -> dict[str, np.ndarray]:
    """The flat arrays of a `.npz` or a sharded prefix, any `params/` prefix dropped."""
    if checkpoint.endswith(".npz"):
        return read_flat(checkpoint, checkpoint)
    try:
        flat = sharded.read(checkpoint)
    except sharded.ShardedCheckpointError as err:
        raise ClassifierError(str(err).replace("\n", " ")) from None
    return bv_npz._strip_prefix(flat)  # noqa: SLF001


def load_checkpoint(checkpoint: str, dtype=np.float32, **options) -> tuple[dict, VMoEConfig]:
    """Reads a V-MoE checkpoint (`.npz` or sharded prefix); returns (parameter tree, config).

    Raises:
      ClassifierCheckpointError: unreadable files or missing/unexpected/misshapen arrays.
    """
    flat = read_any(checkpoint)
    cfg = infer_config(flat, checkpoint, **options)
    check_layout(flat, param_shapes(cfg), WHAT, checkpoint)
    return bv_npz.unflatten({k: np.asarray(flat[k], dtype=dtype) for k in sorted(flat)}), cfg


def save_checkpoint(path: str, params: dict, *, num_shards: int = 1,
                    max_rows: int | None = None) -> list[str]:
    """Writes `params` as the authors' sharded checkpoint at prefix `path`, or as a flat `.npz`
    when `path` ends in `.npz`; returns the files written."""
    flat = bv_npz.flatten(params)
    if path.endswith(".npz"):
        write_npz(path, flat)
        return [path]
    return sharded.write(path, flat, num_shards=num_shards, max_rows=max_rows)
