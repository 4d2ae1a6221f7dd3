"""SigLIP image encoder (big_vision `models/vit.py` with pool_type="none") as pure JAX functions.

Parameters are nested dicts named exactly like big_vision's flax modules, in the scanned layout
(`Transformer/encoderblock/...` with a leading layer axis), so a checkpoint's `img/...` subtree is
the parameter tree as is. PaliGemma keeps every patch token: the `head` Dense projects each token
to the LLM width (it is the "linear projection" of the paper).

The blocks follow the tree they are given, so the ViT family (`models/vit`) runs ViT-22B's
options through the same code: a block without `LayerNorm_1` is a parallel block, `query_ln` /
`key_ln` normalise queries and keys (flax's `normalize_qk`), and a missing `bias` is no bias.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.paligemma.configs import VisionConfig

LN_EPS = 1e-6  # flax.linen.LayerNorm default.


def layer_norm(x, p, eps: float = LN_EPS):
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps) * p["scale"]
    return (y + p["bias"] if "bias" in p else y).astype(x.dtype)


def _dense(x, p, equation: str):
    """flax Dense / DenseGeneral: `x` times the kernel (an einsum), plus the bias if any."""
    y = jnp.einsum(equation, x, p["kernel"])
    return y + p["bias"] if "bias" in p else y


def attention(p, x, context=None):
    """flax MultiHeadDotProductAttention (DenseGeneral q/k/v/out): queries from `x`, keys and values
    from `context` (default `x`: self-attention; SigLIP's MAP head attends from a probe token)."""
    context = x if context is None else context
    q = _dense(x, p["query"], "BLD,DNH->BLNH")
    k = _dense(context, p["key"], "BLD,DNH->BLNH")
    v = _dense(context, p["value"], "BLD,DNH->BLNH")
    if "query_ln" in p:  # QK normalisation over each head's features (ViT-22B)
        q, k = layer_norm(q, p["query_ln"]), layer_norm(k, p["key_ln"])
    q = q / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    logits = jnp.einsum("BTNH,BSNH->BNTS", q, k).astype(jnp.float32)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    y = jnp.einsum("BNTS,BSNH->BTNH", probs, v)
    return _dense(y, p["out"], "BTNH,NHD->BTD")


def mlp(p, x, gelu_approximate: bool = True):
    h = _dense(x, p["Dense_0"], "...i,io->...o")
    h = jax.nn.gelu(h, approximate=gelu_approximate)  # tanh: flax nn.gelu default; exact: HF ViT
    return _dense(h, p["Dense_1"], "...i,io->...o")


def encoder_block(p, x, eps: float = LN_EPS, gelu_approximate: bool = True):
    """Pre-LN encoder block: x + MHA(LN(x)), then x + MLP(LN(x)). Without `LayerNorm_1` it is
    ViT-22B's parallel block, both branches on one norm: x + MHA(LN(x)) + MLP(LN(x)).
    `eps` and `gelu_approximate` differ only for Hugging Face ViT weights (1e-12, exact GELU)."""
    y = layer_norm(x, p["LayerNorm_0"], eps)
    attn = attention(p["MultiHeadDotProductAttention_0"], y)
    if "LayerNorm_1" not in p:
        return x + attn + mlp(p["MlpBlock_0"], y, gelu_approximate)
    x = x + attn
    return x + mlp(p["MlpBlock_0"], layer_norm(x, p["LayerNorm_1"], eps), gelu_approximate)


def transformer(params, x, eps: float = LN_EPS, gelu_approximate: bool = True):
    """big_vision `vit.Encoder` over tokens [B, L, D]: the scanned `encoderblock` stack, then
    `encoder_norm` (shared by SigLIP's image tower and its text tower)."""
    def step(carry, block_params):
        return encoder_block(block_params, carry, eps, gelu_approximate), None

    x, _ = jax.lax.scan(step, x, params["encoderblock"])
    return layer_norm(x, params["encoder_norm"], eps)


def patchify(images, patch):
    """[B, H, W, C] -> [B, (H/p)*(W/p), p*p*C] in the (row, col, channel) order of an HWIO conv."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // patch, patch, w // patch, patch, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def patch_embedding(p, images, patch_size: int):
    """images float [B, R, R, C] -> [B, (R/p)^2, width] through a stride-p VALID conv `p` (ViT's
    `embedding`, Mixer's `stem`), which is exactly this matmul over flattened patches."""
    if images.shape[1] % patch_size or images.shape[2] % patch_size:
        raise ValueError(f"image size {images.shape[1:3]} is not a multiple of {patch_size}")
    kernel = p["kernel"]
    x = patchify(images.astype(kernel.dtype), patch_size) @ kernel.reshape(-1, kernel.shape[-1])
    return x + p["bias"] if "bias" in p else x


def embed_patches(params, images, patch_size: int):
    """images float [B, R, R, 3] -> patch tokens [B, (R/p)^2, width] plus the learned posemb."""
    x = patch_embedding(params["embedding"], images, patch_size)
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
