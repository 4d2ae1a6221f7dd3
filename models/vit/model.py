"""The ViT classifier's forward pass as pure JAX over big_vision's parameter tree (scanned).

Patch embedding, encoder blocks and the MAP head are the ones SigLIP and PaliGemma run
(`models/paligemma/siglip.py`, `models/siglip/model.py`): the same big_vision `vit.py`. The blocks
follow the tree, so ViT-22B's parallel block, QK norm and missing biases need no code here; this
module adds what a classifier has on top: the `cls` token, pooling, `pre_logits` and `head`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tessera.models.image_classifier import random_params
from tessera.models.paligemma import siglip
from tessera.models.siglip.model import map_head
from tessera.models.vit import checkpoint
from tessera.models.vit.configs import ViTConfig


def _dense(p, x):
    return x @ p["kernel"] + p["bias"]


def encode(params, images, cfg: ViTConfig):
    """images float [B, R, R, 3] in `cfg.value_range` -> encoded tokens [B, L, width]."""
    x = siglip.patch_embedding(params["embedding"], images, cfg.patch_size)
    posemb = params["pos_embedding"].astype(x.dtype)
    if cfg.pool == "tok":
        cls = jnp.broadcast_to(params["cls"].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
        # big_vision adds the posemb to the patches only; the original ViT gives `cls` one too.
        x = (jnp.concatenate([cls, x], axis=1) + posemb if cfg.posemb_with_cls
             else jnp.concatenate([cls, x + posemb], axis=1))
    else:
        x = x + posemb
    return siglip.transformer(params["Transformer"], x, cfg.layer_norm_eps, cfg.gelu_approximate)


def forward(params, images, cfg: ViTConfig):
    """images [B, R, R, 3] -> (logits [B, classes] or None without a head, pre-logits [B, D])."""
    x = encode(params, images, cfg)
    if cfg.pool == "map":
        x = map_head(params["MAPHead_0"], x)
    elif cfg.pool == "tok":
        x = x[:, 0]
    else:
        x = jnp.mean(x, axis=1)
    if cfg.representation_size:
        x = jnp.tanh(_dense(params["pre_logits"], x))
    return (_dense(params["head"], x) if cfg.num_classes else None), x


def init_params(seed: int, cfg: ViTConfig, dtype=np.float32) -> dict:
    """Random parameters in the checkpoint's tree (scanned), every array perturbed."""
    return random_params(seed, checkpoint.param_shapes(cfg), checkpoint.fan_in, dtype)
