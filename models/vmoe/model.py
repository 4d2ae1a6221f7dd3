"""V-MoE's forward pass as pure JAX over the authors' parameter tree (`vmoe/nn/vit_moe.py`,
`VisionTransformerMoe` with `deterministic=True`).

A ViT with the original ViT's token layout (`cls` first, then the posemb over all tokens) and
pre-LN blocks; the attention, LayerNorm and MLP are flax's, shared with the ViT family
(`models/paligemma/siglip.py`). Blocks listed in `cfg.moe_layers` run the sparse MoE of MLPs
(`routing.moe_mlp`) on tokens grouped `cfg.images_per_group` images at a time. The blocks are
unrolled (dense and MoE blocks differ), which jit compiles once per batch shape.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tessera.models.image_classifier import random_params
from tessera.models.paligemma.siglip import attention, layer_norm, mlp, patch_embedding
from tessera.models.vmoe import checkpoint, routing
from tessera.models.vmoe.configs import VMoEConfig


def _dense(p, x):
    return x @ p["kernel"] + p["bias"]


def capacity(cfg: VMoEConfig) -> int:
    """Slots per expert in one routing group of `cfg`."""
    return routing.expert_capacity(cfg.group_size, cfg.num_experts, cfg.num_selected_experts,
                                   cfg.capacity_ratio, cfg.capacity_rounding,
                                   cfg.capacity_multiple_of)


def moe(p, x, cfg: VMoEConfig):
    """The `Moe` MLP over tokens [B, L, D]: routed in groups of `images_per_group` images."""
    batch, length, width = x.shape
    if batch % cfg.images_per_group:
        raise ValueError(f"a batch of {batch} images does not split into routing groups of "
                         f"{cfg.images_per_group}")
    y = routing.moe_mlp(p, x.reshape(-1, cfg.group_size, width), k=cfg.num_selected_experts,
                        capacity=capacity(cfg), batch_priority=cfg.batch_priority)
    return y.reshape(batch, length, width)


def encoder_block(p, x, cfg: VMoEConfig):
    """Pre-LN block: x + MHA(LN(x)), then x + MLP(LN(x)) with a dense or a MoE MLP."""
    x = x + attention(p["SelfAttention"], layer_norm(x, p["LayerNorm_0"]))
    y = layer_norm(x, p["LayerNorm_1"])
    return x + (moe(p["Moe"], y, cfg) if "Moe" in p else mlp(p["Mlp"], y))


def encode(params, images, cfg: VMoEConfig):
    """images float [B, R, R, 3] in `cfg.value_range` -> encoded tokens [B, L, width]."""
    x = patch_embedding(params["embedding"], images, cfg.patch_size)
    if cfg.pool == "tok":
        cls = jnp.broadcast_to(params["cls"].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1)
    encoder = params["Encoder"]
    x = x + encoder["posembed_input"]["pos_embedding"].astype(x.dtype)
    for i in range(cfg.depth):
        x = encoder_block(encoder[f"encoderblock_{i}"], x, cfg)
    return layer_norm(x, encoder["encoder_norm"])


def forward(params, images, cfg: VMoEConfig):
    """images [B, R, R, 3] -> (logits [B, classes] or None without a head, pre-logits [B, D])."""
    x = encode(params, images, cfg)
    x = x[:, 0] if cfg.pool == "tok" else jnp.mean(x, axis=1)
    if cfg.representation_size:
        x = jnp.tanh(_dense(params["pre_logits"], x))
    return (_dense(params["head"], x) if cfg.num_classes else None), x


def init_params(seed: int, cfg: VMoEConfig, dtype=np.float32) -> dict:
    """Random parameters in the checkpoint's tree, every array perturbed."""
    return random_params(seed, checkpoint.param_shapes(cfg), checkpoint.fan_in, dtype)
