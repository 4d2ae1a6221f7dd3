"""The OWL-ViT forward pass as pure JAX functions over scenic's parameter tree.

The tree is the one scenic's `TextZeroShotDetectionModule` trains and saves (`params/...`):

  backbone/clip/visual/{conv1, class_embedding, positional_embedding, ln_pre, transformer, ln_post}
  backbone/clip/text/{token_embedding, positional_embedding, transformer, ln_final, text_projection}
  backbone/merged_class_token   class_head/{Dense_0, logit_shift, logit_scale}
  obj_box_head/{Dense_0, Dense_1, Dense_2}

with `transformer/resblocks_{i}/{ln_0, attn/{query,key,value,out}, ln_1, mlp/{c_fc, c_proj}}` (flax
`SelfAttention` layout: kernels [in, heads, head_dim]). Written from scenic's `clip/layers.py`,
`layers.py` and `models.py`; checked against Hugging Face's port by `benchmarks/parity_owlvit.py`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.owlvit.configs import OwlViTConfig

CLASS_NORM_EPS = 1e-6  # ClassPredictor: x / (||x|| + 1e-6), image and query embeddings
LOGIT_EPS = 1e-4  # utils.logit: log(x + eps) - log1p(-x + eps)


def dense(p, x):
    return x @ p["kernel"] + p["bias"] if "bias" in p else x @ p["kernel"]


def layer_norm(x, p, eps):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def quick_gelu(x):
    return x * jax.nn.sigmoid(1.702 * x)


def attention(p, x, mask=None):
    """flax SelfAttention: [B, T, D] -> [B, T, D]; `mask` [B|1, 1, T, T] True where allowed."""
    q, k, v = (jnp.einsum("btd,dhk->bthk", x, p[n]["kernel"]) + p[n]["bias"]
               for n in ("query", "key", "value"))
    logits = jnp.einsum("bqhk,bthk->bhqt", q, k) / jnp.sqrt(q.shape[-1]).astype(x.dtype)
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    out = jnp.einsum("bhqt,bthk->bqhk", jax.nn.softmax(logits, axis=-1), v)
    return jnp.einsum("bqhk,hkd->bqd", out, p["out"]["kernel"]) + p["out"]["bias"]


def transformer(p, x, eps, mask=None):
    """CLIP `Transformer`: pre-LN residual blocks, quick_gelu MLP."""
    for i in range(len(p)):
        block = p[f"resblocks_{i}"]
        x = x + attention(block["attn"], layer_norm(x, block["ln_0"], eps), mask)
        h = quick_gelu(dense(block["mlp"]["c_fc"], layer_norm(x, block["ln_1"], eps)))
        x = x + dense(block["mlp"]["c_proj"], h)
    return x


def image_features(params, images, cfg: OwlViTConfig):
    """images [B, R, R, 3] (CLIP-normalised) -> per-patch features [B, grid*grid, width].

    The vision tower keeps every token (`vision_return_map`), then each patch token is multiplied
    by the class token and layer-normalised (`merge_class_token='mul-ln'`)."""
    v = params["backbone"]["clip"]["visual"]
    x = jax.lax.conv_general_dilated(images, v["conv1"]["kernel"].astype(images.dtype),
                                     (cfg.patch_size,) * 2, "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = x.reshape(x.shape[0], -1, x.shape[-1])
    cls = jnp.broadcast_to(v["class_embedding"], (x.shape[0], 1, x.shape[-1]))
    x = jnp.concatenate([cls, x], axis=1) + v["positional_embedding"][None]
    x = layer_norm(x, v["ln_pre"], cfg.vision_norm_eps)
    x = transformer(v["transformer"], x, cfg.vision_norm_eps)
    x = layer_norm(x, v["ln_post"], cfg.vision_norm_eps)
    merged = x[:, 1:] * x[:, :1]
    return layer_norm(merged, params["backbone"]["merged_class_token"], cfg.merged_norm_eps)


def text_embeddings(params, tokens, cfg: OwlViTConfig):
    """tokens int [N, L] (0 = padding) -> query embeddings [N, embed_dim], unnormalised.

    Causal attention that also ignores padding keys, pooled at the highest id (CLIP's EOT)."""
    t = params["backbone"]["clip"]["text"]
    x = jnp.take(t["token_embedding"]["embedding"], tokens, axis=0)
    x = x + t["positional_embedding"][None, :tokens.shape[1]]
    length = tokens.shape[1]
    causal = jnp.tril(jnp.ones((length, length), bool))
    mask = causal[None, None] & (tokens > 0)[:, None, None, :]
    x = transformer(t["transformer"], x, cfg.text_norm_eps, mask)
    x = layer_norm(x, t["ln_final"], cfg.text_norm_eps)
    x = x[jnp.arange(x.shape[0]), jnp.argmax(tokens, axis=-1)]
    return dense(t["text_projection"], x)


def class_logits(params, features, queries):
    """features [B, P, W], queries [Q, E] -> logits [B, P, Q]: cosine, shifted and scaled per
    token (`ClassPredictor(normalize=True)`: (cos + shift) * (elu(scale) + 1))."""
    h = params["class_head"]
    emb = dense(h["Dense_0"], features)
    emb = emb / (jnp.linalg.norm(emb, axis=-1, keepdims=True) + CLASS_NORM_EPS)
    queries = queries / (jnp.linalg.norm(queries, axis=-1, keepdims=True) + CLASS_NORM_EPS)
    logits = jnp.einsum("bpd,qd->bpq", emb, queries)
    shift = dense(h["logit_shift"], features)
    scale = jax.nn.elu(dense(h["logit_scale"], features)) + 1
    return (logits + shift) * scale


def box_bias(grid: int) -> np.ndarray:
    """[grid*grid, 4] logits of each token's grid corner (x, y) and of the patch size (w, h):
    every token starts out predicting its own patch (`utils.compute_box_bias(kind='both')`)."""
    xy = np.stack(np.meshgrid(np.arange(1, grid + 1), np.arange(1, grid + 1)), axis=-1)
    xy = np.clip(xy.reshape(-1, 2).astype(np.float32) / grid, 0.0, 1.0)
    wh = np.full_like(xy, 1.0 / grid)

    def logit(p):
        return np.log(p + LOGIT_EPS) - np.log1p(-p + LOGIT_EPS)
    return np.concatenate([logit(xy), logit(wh)], axis=-1).astype(np.float32)


def boxes(params, features, cfg: OwlViTConfig):
    """features [B, P, W] -> boxes [B, P, 4] (cx, cy, w, h) in [0, 1] of the model's input."""
    h = params["obj_box_head"]
    x = jax.nn.gelu(dense(h["Dense_0"], features), approximate=not cfg.exact_gelu)
    x = jax.nn.gelu(dense(h["Dense_1"], x), approximate=not cfg.exact_gelu)
    return jax.nn.sigmoid(dense(h["Dense_2"], x) + box_bias(cfg.grid))


def detect(params, images, queries, cfg: OwlViTConfig):
    """images [B, R, R, 3], query embeddings [Q, E] -> (logits [B, P, Q], boxes [B, P, 4])."""
    features = image_features(params, images, cfg)
    return class_logits(params, features, queries), boxes(params, features, cfg)


def init_params(seed: int, cfg: OwlViTConfig, dtype=np.float32) -> dict:
    """Random numpy parameters in scenic's tree; every array perturbed (no zero bias or unit scale
    to hide a layout mistake). For the tiny variant, tests and benchmarks."""
    from tessera.models.owlvit.checkpoint import param_shapes
    from tessera.models.paligemma.checkpoint import unflatten
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in sorted(param_shapes(cfg).items()):
        if name.endswith("scale") and len(shape) == 1:
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) >= 2 and "kernel" in name:
            by_all = "conv1" in name or "attn/out" in name  # fan-in spans all but the last axis
            fan_in = np.prod(shape[:-1]) if by_all else shape[0]
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
        else:
            value = 0.05 * rng.standard_normal(shape)
        flat[name] = np.asarray(value, dtype)
    t = flat["backbone/clip/text/token_embedding/embedding"]
    flat["backbone/clip/text/token_embedding/embedding"] = (t * 20).astype(dtype)
    return unflatten(flat)
