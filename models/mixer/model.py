"""MLP-Mixer's forward pass as pure JAX over the released parameter tree (blocks stacked).

The stem is ViT's patch embedding and the MLPs are flax `MlpBlock`s (Dense, tanh-GELU as flax's
`nn.gelu`, Dense), so both come from `models/paligemma/siglip.py`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.image_classifier import random_params
from tessera.models.mixer import checkpoint
from tessera.models.mixer.configs import MixerConfig
from tessera.models.paligemma.siglip import layer_norm, mlp, patch_embedding


def mixer_block(p, x):
    """x + token-mixing MLP over the patches (per channel), then x + channel-mixing MLP."""
    y = jnp.swapaxes(layer_norm(x, p["LayerNorm_0"]), 1, 2)
    x = x + jnp.swapaxes(mlp(p["token_mixing"], y), 1, 2)
    return x + mlp(p["channel_mixing"], layer_norm(x, p["LayerNorm_1"]))


def forward(params, images, cfg: MixerConfig):
    """images [B, R, R, 3] -> (logits [B, classes] or None without a head, pre-logits [B, C])."""
    x = patch_embedding(params["stem"], images, cfg.patch_size)
    x, _ = jax.lax.scan(lambda carry, p: (mixer_block(p, carry), None), x, params["MixerBlock"])
    x = jnp.mean(layer_norm(x, params["pre_head_layer_norm"]), axis=1)
    if not cfg.num_classes:
        return None, x
    return x @ params["head"]["kernel"] + params["head"]["bias"], x


def init_params(seed: int, cfg: MixerConfig, dtype=np.float32) -> dict:
    """Random parameters in the checkpoint's tree (stacked blocks), every array perturbed."""
    return random_params(seed, checkpoint.param_shapes(cfg), checkpoint.fan_in, dtype)
