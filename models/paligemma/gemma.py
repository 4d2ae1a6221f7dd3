"""Gemma decoder (big_vision `models/ppp/gemma.py`) as pure JAX functions, with a KV cache.

Parameter names and shapes are big_vision's, scanned layout (`layers/...` stacked on a leading
layer axis): `embedder/input_embedding` [V, D], `layers/attn/q_einsum/w` [L, N, D, H],
`layers/attn/kv_einsum/w` [L, 2, K, D, H] (or `qkv_einsum/w` [L, 3, N, D, H] when K == N),
`layers/attn/attn_vec_einsum/w` [L, N, H, D], `layers/mlp/gating_einsum` [L, 2, D, F],
`layers/mlp/linear` [L, F, D], `layers/pre_attention_norm/scale`, `layers/pre_ffw_norm/scale`,
`final_norm/scale`.

The cache is a dict of `k`, `v` arrays [L, B, S, K, H]; callers say where to write (`cache_index`)
and pass the [B, T, S] attention mask over cache slots, so one code path serves prefill, one-token
extension and the cache-free forward pass.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.paligemma.configs import TextConfig

BIG_NEG = -2.3819763e38  # big_vision/gemma: masked logits value.


def rms_norm(x, scale, eps=1e-6):
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    return (x32 * jax.lax.rsqrt(var + eps) * (1 + scale.astype(jnp.float32))).astype(x.dtype)


def apply_rope(x, positions, max_wavelength=10_000):
    """RoPE on the two halves of the head dim; x [B, T, N, H], positions [B, T]."""
    half = x.shape[-1] // 2
    timescale = max_wavelength ** ((2.0 / x.shape[-1]) * jnp.arange(half))
    radians = positions[..., None].astype(jnp.float32) / timescale[None, None, :]
    sin, cos = jnp.sin(radians)[..., None, :], jnp.cos(radians)[..., None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).astype(x.dtype)


def embed_tokens(params, tokens):
    table = params["embedder"]["input_embedding"]
    return table[tokens] * jnp.sqrt(table.shape[-1]).astype(table.dtype)


def softcap(x, cap: float | None):
    """Gemma 2's soft cap: cap * tanh(x / cap) (identity without a cap)."""
    return x if cap is None else cap * jnp.tanh(x / cap)


def logits_from(params, pre_logits, final_softcap: float | None = None):
    """Tied output embedding; float32 logits even for bfloat16 weights, so that greedy argmax over
    257k entries is not decided by bfloat16 rounding."""
    return softcap(jnp.einsum("...d,vd->...v", pre_logits, params["embedder"]["input_embedding"],
                              preferred_element_type=jnp.float32), final_softcap)


def window_mask(attn_mask, q_positions, k_positions, window: int | None, bidirectional=None):
    """Gemma 2's local attention: `attn_mask` limited to keys less than `window` positions back,
    except within the bidirectional image+prefix block (`bidirectional`: bool [B, T, S], pairs
    that see each other), which stays whole, as transformers' PaliGemma 2 does (parity tested;
    it only matters past 4096 tokens, i.e. 896 px). None: `attn_mask` unchanged."""
    if window is None:
        return attn_mask
    near = (q_positions[:, :, None] - k_positions[:, None, :]) < window
    if bidirectional is not None:
        near = near | bidirectional
    return attn_mask & near


def _qkv(p, x):
    if "qkv_einsum" in p:
        q, k, v = jnp.einsum("BSD,3KDH->3BSKH", x, p["qkv_einsum"]["w"])
        return q, k, v
    q = jnp.einsum("BTD,NDH->BTNH", x, p["q_einsum"]["w"])
    k, v = jnp.einsum("BSD,2KDH->2BSKH", x, p["kv_einsum"]["w"])
    return q, k, v


def _attention(p, x, positions, attn_mask, k_cache, v_cache, cache_index, cfg: TextConfig | None):
    q, k, v = _qkv(p, x)
    q = apply_rope(q, positions) * (cfg.query_scale if cfg is not None else q.shape[-1] ** -0.5)
    k = apply_rope(k, positions)
    if k_cache is not None:
        start = (0, cache_index, 0, 0)
        k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), start)
        v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), start)
        k, v = k_cache.astype(q.dtype), v_cache.astype(q.dtype)
    b, t, n, h = q.shape
    kv_heads = k.shape[2]
    q = q.reshape(b, t, kv_heads, n // kv_heads, h)
    logits = jnp.einsum("BTKGH,BSKH->BKGTS", q, k).astype(jnp.float32)
    logits = softcap(logits, cfg.attn_softcap if cfg is not None else None)
    logits = jnp.where(attn_mask[:, None, None, :, :], logits, BIG_NEG)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("BKGTS,BSKH->BTKGH", probs, v).reshape(b, t, n, h)
    return jnp.einsum("BTNH,NHD->BTD", out, p["attn_vec_einsum"]["w"]), k_cache, v_cache


def _mlp(p, x):
    w = p["gating_einsum"]
    gate = jax.nn.gelu(x @ w[0], approximate=True)
    return (gate * (x @ w[1])) @ p["linear"]


def forward(params, x, positions, attn_mask, cache=None, cache_index=0, *,
            cfg: TextConfig | None = None, local_mask=None):
    """Runs the decoder blocks and the final norm.

    Args:
      params: the `llm` parameter tree.
      x: float [B, T, D] embedded inputs (image tokens and/or embedded text).
      positions: int [B, T] RoPE positions.
      attn_mask: bool [B, T, S]; S == T without a cache, S == cache length with one.
      cache: None, or {"k": [L, B, S, K, H], "v": ...}; x's keys/values are written at
        `cache_index` and attention runs over the whole cache.
      cache_index: int (may be traced) slot of x's first token in the cache.
      cfg: the decoder's config (static): Gemma 2's soft cap and query scale; None is Gemma 1.
      local_mask: bool [B, T, S], `attn_mask` limited to the sliding window (`window_mask`),
        used by the local layers (even indices) when `cfg.sliding_window` is set.

    Returns:
      (pre_logits [B, T, D], updated cache or None).
    """
    layers = params["layers"]
    depth = jax.tree_util.tree_leaves(layers)[0].shape[0]
    windowed = local_mask is not None
    local = jnp.arange(depth) % 2 == 0  # Gemma 2: local, global, local, ...

    def block(h, lp, is_local, kc, vc):
        mask = jnp.where(is_local, local_mask, attn_mask) if windowed else attn_mask
        a, kc, vc = _attention(lp["attn"], rms_norm(h, lp["pre_attention_norm"]["scale"]),
                               positions, mask, kc, vc, cache_index, cfg)
        if "post_attention_norm" in lp:  # Gemma 2
            a = rms_norm(a, lp["post_attention_norm"]["scale"])
        h = h + a
        m = _mlp(lp["mlp"], rms_norm(h, lp["pre_ffw_norm"]["scale"]))
        if "post_ffw_norm" in lp:
            m = rms_norm(m, lp["post_ffw_norm"]["scale"])
        return h + m, kc, vc

    if cache is None:
        def step(h, xs):
            lp, is_local = xs
            h, _, _ = block(h, lp, is_local, None, None)
            return h, None
        x, _ = jax.lax.scan(step, x, (layers, local))
        new_cache = None
    else:
        def step(h, xs):
            lp, is_local, kc, vc = xs
            h, kc, vc = block(h, lp, is_local, kc, vc)
            return h, (kc, vc)
        x, (k, v) = jax.lax.scan(step, x, (layers, local, cache["k"], cache["v"]))
        new_cache = {"k": k, "v": v}
    return rms_norm(x, params["final_norm"]["scale"]), new_cache


def empty_cache(cfg: TextConfig, batch: int, size: int, dtype=jnp.float32) -> dict:
    shape = (cfg.depth, batch, size, cfg.num_kv_heads, cfg.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def init_params(rng: np.random.Generator, cfg: TextConfig, dtype=np.float32,
                out_gain: float = 10.0) -> dict:
    """Random parameters with big_vision names/shapes (scanned layout); for tests and benchmarks.

    `out_gain` enlarges the attention/MLP output projections: a tiny random decoder whose residual
    stream is dominated by the input embedding just echoes its last token (tied embeddings), which
    would make decoding tests pass vacuously.
    """
    d, f, n, kh, h, depth = (cfg.width, cfg.mlp_dim, cfg.num_heads, cfg.num_kv_heads,
                             cfg.head_dim, cfg.depth)

    def normal(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    if kh == n:
        attn = {"qkv_einsum": {"w": normal((depth, 3, n, d, h), d)}}
    else:
        attn = {"q_einsum": {"w": normal((depth, n, d, h), d)},
                "kv_einsum": {"w": normal((depth, 2, kh, d, h), d)}}
    attn["attn_vec_einsum"] = {"w": out_gain * normal((depth, n, h, d), n * h)}
    layers = {
        "attn": attn,
        "mlp": {"gating_einsum": normal((depth, 2, d, f), d),
                "linear": out_gain * normal((depth, f, d), f)},
        "pre_attention_norm": {"scale": normal((depth, d), 100)},
        "pre_ffw_norm": {"scale": normal((depth, d), 100)},
    }
    if cfg.post_norms:  # Gemma 2; (1 + scale) ~ 3 keeps the normed outputs large (see out_gain)
        layers["post_attention_norm"] = {"scale": 2.0 + normal((depth, d), 100)}
        layers["post_ffw_norm"] = {"scale": 2.0 + normal((depth, d), 100)}
    return {
        "embedder": {"input_embedding": normal((cfg.vocab_size, d), d)},
        "layers": layers,
        # (1 + scale) ~ 4 spreads the tied logits, so greedy choices are not decided by rounding.
        "final_norm": {"scale": 3.0 + normal((d,), 100)},
    }
