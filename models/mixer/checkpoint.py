"""Reads and writes MLP-Mixer `.npz` checkpoints in the released layout
(google-research/vision_transformer; no prefix, or `params/` / `opt/target/`):

  stem/{kernel,bias}
  MixerBlock_{i}/LayerNorm_0  MixerBlock_{i}/token_mixing/Dense_{0,1}
  MixerBlock_{i}/LayerNorm_1  MixerBlock_{i}/channel_mixing/Dense_{0,1}
  pre_head_layer_norm  [head]

The blocks are stacked to `MixerBlock/...` with a layer axis (the parameter tree); sizes are read
off the arrays, then every array must be present, float and of the expected shape, and nothing may
be left over (one-line errors naming the arrays).
"""
from __future__ import annotations

import math
import re

import numpy as np

from tessera.models.image_classifier import ClassifierCheckpointError
from tessera.models.image_classifier import (check_layout, read_flat, shape_of, stack_layers,
                                             unstack_layers, write_npz)
from tessera.models.mixer.configs import MixerConfig
from tessera.models.paligemma import checkpoint as bv_npz

BLOCKS = "MixerBlock/"
_LOOP = re.compile(r"^MixerBlock_(\d+)/(.+)$")
WHAT = "an MLP-Mixer checkpoint"


def param_shapes(cfg: MixerConfig) -> dict[str, tuple[int, ...]]:
    """Every array of the model (stacked blocks) and its shape, released names."""
    c, p, s, n = cfg.hidden_dim, cfg.patch_size, cfg.num_tokens, (cfg.num_blocks,)
    shapes = {"stem/kernel": (p, p, 3, c), "stem/bias": (c,),
              "pre_head_layer_norm/scale": (c,), "pre_head_layer_norm/bias": (c,)}
    for norm in ("LayerNorm_0", "LayerNorm_1"):
        shapes[f"{BLOCKS}{norm}/scale"] = shapes[f"{BLOCKS}{norm}/bias"] = n + (c,)
    for mix, width, hidden in (("token_mixing", s, cfg.tokens_mlp_dim),
                               ("channel_mixing", c, cfg.channels_mlp_dim)):
        shapes.update({f"{BLOCKS}{mix}/Dense_0/kernel": n + (width, hidden),
                       f"{BLOCKS}{mix}/Dense_0/bias": n + (hidden,),
                       f"{BLOCKS}{mix}/Dense_1/kernel": n + (hidden, width),
                       f"{BLOCKS}{mix}/Dense_1/bias": n + (width,)})
    if cfg.num_classes:
        shapes.update({"head/kernel": (c, cfg.num_classes), "head/bias": (cfg.num_classes,)})
    return shapes


def fan_in(name: str, shape: tuple) -> int:
    return math.prod(shape[1 if name.startswith(BLOCKS) else 0:-1])


def infer_config(flat: dict[str, np.ndarray], source: str = "") -> MixerConfig:
    """Sizes from the arrays of a stacked checkpoint."""
    patch, _, _, hidden = shape_of(flat, "stem/kernel", 4, source)
    tokens, tokens_mlp = shape_of(flat, BLOCKS + "token_mixing/Dense_0/kernel", 3, source)[1:]
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ClassifierCheckpointError(f"{source}: {BLOCKS}token_mixing mixes {tokens} tokens, "
                                        "not a square grid of patches")
    return MixerConfig(
        hidden_dim=hidden, num_blocks=shape_of(flat, BLOCKS + "LayerNorm_0/scale", 2, source)[0],
        tokens_mlp_dim=tokens_mlp,
        channels_mlp_dim=shape_of(flat, BLOCKS + "channel_mixing/Dense_0/kernel", 3, source)[-1],
        patch_size=patch, image_size=grid * patch,
        num_classes=shape_of(flat, "head/kernel", 2, source)[-1] if "head/kernel" in flat else 0)


def load_checkpoint(path_or_bytes, dtype=np.float32) -> tuple[dict, MixerConfig]:
    """Reads a Mixer npz; returns (parameter tree, config).

    Raises:
      ClassifierCheckpointError: unreadable file or missing/unexpected/misshapen arrays.
    """
    source = path_or_bytes if isinstance(path_or_bytes, str) else ""
    flat = stack_layers(read_flat(path_or_bytes, source), _LOOP, BLOCKS, source)
    cfg = infer_config(flat, source)
    check_layout(flat, param_shapes(cfg), WHAT, source)
    return bv_npz.unflatten({k: np.asarray(flat[k], dtype=dtype) for k in sorted(flat)}), cfg


def save_checkpoint(path: str, params: dict, *, prefix: str = "") -> None:
    """Writes `params` as the released files are: per-layer `MixerBlock_{i}`, no prefix."""
    flat = unstack_layers(bv_npz.flatten(params), BLOCKS, lambda i: f"MixerBlock_{i}/")
    write_npz(path, {prefix + k: v for k, v in flat.items()})
