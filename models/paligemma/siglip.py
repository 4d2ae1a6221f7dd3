"""SigLIP image encoder (big_vision `models/vit.py` with pool_type="none") as pure JAX functions.

Parameters are nested dicts named exactly like big_vision's flax modules, in the scanned layout
(`Transformer/encoderblock/...` with a leading layer axis), so a checkpoint's `img/...` subtree is
the parameter tree as is. PaliGemma keeps every patch token: the `head` Dense projects each token
to the LLM width (it is the "linear projection" of the paper).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.paligemma.configs import VisionConfig

LN_EPS = 1e-6  # flax.linen.LayerNorm default.


def layer_norm(x, p):
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + LN_EPS)
    return (y * p["scale"] + p["bias"]).astype(x.dtype)


def attention(p, x, context=None):
    """flax MultiHeadDotProductAttention (DenseGeneral q/k/v/out): queries from `x`, keys and values
    from `context` (default `x`: self-attention; SigLIP's MAP head attends from a probe token)."""
    context = x if context is None else context
    q = jnp.einsum("BLD,DNH->BLNH", x, p["query"]["kernel"]) + p["query"]["bias"]
    k = jnp.einsum("BLD,DNH->BLNH", context, p["key"]["kernel"]) + p["key"]["bias"]
    v = jnp.einsum("BLD,DNH->BLNH", context, p["value"]["kernel"]) + p["value"]["bias"]
    q = q / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    logits = jnp.einsum("BTNH,BSNH->BNTS", q, k).astype(jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    y = jnp.einsum("BNTS,BSNH->BTNH", probs, v)
    return jnp.einsum("BTNH,NHD->BTD", y, p["out"]["kernel"]) + p["out"]["bias"]


def mlp(p, x):
    h = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    h = jax.nn.gelu(h, approximate=True)  # flax nn.gelu default.
    return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]


def encoder_block(p, x):
    """Pre-LN encoder block: x + MHA(LN(x)), then x + MLP(LN(x))."""
    x = x + attention(p["MultiHeadDotProductAttention_0"], layer_norm(x, p["LayerNorm_0"]))
    return x + mlp(p["MlpBlock_0"], layer_norm(x, p["LayerNorm_1"]))


def transformer(params, x):
    """big_vision `vit.Encoder` over tokens [B, L, D]: the scanned `encoderblock` stack, then
    `encoder_norm` (shared by SigLIP's image tower and its text tower)."""
    def step(carry, block_params):
        return encoder_block(block_params, carry), None

    x, _ = jax.lax.scan(step, x, params["encoderblock"])
    return layer_norm(x, params["encoder_norm"])


def patchify(images, patch):
    """[B, H, W, C] -> [B, (H/p)*(W/p), p*p*C] in the (row, col, channel) order of an HWIO conv."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // patch, patch, w // patch, patch, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def embed_patches(params, images, patch_size: int):
    """images float [B, R, R, 3] -> patch tokens [B, (R/p)^2, width] plus the learned posemb."""
    if images.shape[1] % patch_size or images.shape[2] % patch_size:
        raise ValueError(f"image size {images.shape[1:3]} is not a multiple of {patch_size}")
    kernel = params["embedding"]["kernel"]
    x = patchify(images.astype(kernel.dtype), patch_size)
    # A stride-p VALID conv is exactly this matmul over flattened patches.
    x = x @ kernel.reshape(-1, kernel.shape[-1]) + params["embedding"]["bias"]
    return x + params["pos_embedding"].astype(x.dtype)


def encode(params, images, cfg: VisionConfig):
    """images float [B, R, R, 3] in [-1, 1] -> tokens [B, (R/14)^2, LLM width] (ViT width if no
    head)."""
    x = transformer(params["Transformer"], embed_patches(params, images, cfg.patch_size))
    if "head" in params:
        x = x @ params["head"]["kernel"] + params["head"]["bias"]
    return x


def init_params(rng: np.random.Generator, cfg: VisionConfig, out_dim: int | None,
                dtype=np.float32) -> dict:
    """Random parameters with big_vision names/shapes (scanned layout); for tests and benchmarks."""
    w, m, n, depth, patch = cfg.width, cfg.mlp_dim, cfg.num_heads, cfg.depth, cfg.patch_size
    hd = w // n

    def normal(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    def small(shape):
        return (0.02 * rng.standard_normal(shape)).astype(dtype)

    def ln():
        return {"scale": np.ones((depth, w), dtype) + small((depth, w)), "bias": small((depth, w))}

    block = {
        "LayerNorm_0": ln(), "LayerNorm_1": ln(),
        "MlpBlock_0": {
            "Dense_0": {"kernel": normal((depth, w, m), w), "bias": small((depth, m))},
            "Dense_1": {"kernel": normal((depth, m, w), m), "bias": small((depth, w))},
        },
        "MultiHeadDotProductAttention_0": {
            **{name: {"kernel": normal((depth, w, n, hd), w), "bias": small((depth, n, hd))}
               for name in ("query", "key", "value")},
            "out": {"kernel": normal((depth, n, hd, w), w), "bias": small((depth, w))},
        },
    }
    params = {
        "embedding": {"kernel": normal((patch, patch, 3, w), patch * patch * 3),
                      "bias": small((w,))},
        "pos_embedding": small((1, cfg.num_patches, w)),
        "Transformer": {"encoderblock": block,
                        "encoder_norm": {"scale": np.ones((w,), dtype), "bias": small((w,))}},
    }
    if out_dim:
        params["head"] = {"kernel": normal((w, out_dim), w), "bias": small((out_dim,))}
    return params
