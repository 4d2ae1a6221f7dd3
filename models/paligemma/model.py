"""PaliGemma: SigLIP image tokens + Gemma decoder with prefix-LM attention, and greedy decoding.

Follows big_vision `models/proj/paligemma/paligemma.py` (`make_attn_mask`, image tokens first,
then the text) and `trainers/proj/paligemma/predict_fns.py` (prefill the cache with the prefix,
then extend one token at a time, greedy, stop at EOS).

Batching layout: the prompt ("prefix") tokens of each example are RIGHT-aligned in a fixed-width
slot after the image tokens ([img..., pad..., bos, prompt..., "\\n"]), padding masked out of
attention and positions counted over valid tokens only. Every example's prefix then ends at the same
cache slot, so decoding writes one shared cache column per step (what big_vision gets by rolling
left-aligned inputs), and the result equals running each example alone.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.paligemma import gemma
from tessera.models.paligemma import siglip
from tessera.models.paligemma.configs import PaliGemmaConfig


def make_attn_mask(input_mask, mask_ar):
    """bool [B, N, N]: token i sees valid token j iff cumsum(mask_ar)[j] <= cumsum(mask_ar)[i].

    mask_ar = 0 over image + prefix (full attention among them) and 1 over the answer (causal).
    """
    cumsum = jnp.cumsum(mask_ar, axis=1)
    attn = cumsum[:, None, :] <= cumsum[:, :, None]
    valid = jnp.logical_and(input_mask[:, None, :], input_mask[:, :, None])
    return jnp.logical_and(attn, valid)


def init_params(seed: int, cfg: PaliGemmaConfig, dtype=np.float32) -> dict:
    """Random numpy parameters in big_vision's tree ({"img", "llm"}, scanned layout)."""
    rng = np.random.default_rng(seed)
    return {"img": siglip.init_params(rng, cfg.vision, cfg.text.width, dtype),
            "llm": gemma.init_params(rng, cfg.text, dtype)}


def embed_prefix(params, cfg: PaliGemmaConfig, images, prefix_tokens, prefix_mask):
    """Returns (x [B, I+P, D], input_mask [B, I+P]) for images + right-aligned prefix tokens."""
    zimg = siglip.encode(params["img"], images, cfg.vision)
    ztxt = gemma.embed_tokens(params["llm"], prefix_tokens)
    x = jnp.concatenate([zimg.astype(ztxt.dtype), ztxt], axis=1)
    img_mask = jnp.ones(zimg.shape[:2], bool)
    return x, jnp.concatenate([img_mask, prefix_mask.astype(bool)], axis=1)


def text_logits(params, images, tokens, input_mask, mask_ar, *, cfg: PaliGemmaConfig):
    """Cache-free forward pass: logits [B, T, V] for every text position (teacher forcing)."""
    x, full_mask = embed_prefix(params, cfg, images, tokens, input_mask)
    n_img = x.shape[1] - tokens.shape[1]
    full_ar = jnp.concatenate([jnp.zeros((x.shape[0], n_img), jnp.int32),
                               mask_ar.astype(jnp.int32)], axis=1)
    positions = jnp.cumsum(full_mask, axis=1) - 1
    pre = _forward(params["llm"], cfg, x, positions, make_attn_mask(full_mask, full_ar))
    return gemma.logits_from(params["llm"], pre[:, n_img:], cfg.text.final_softcap)


def _forward(llm, cfg: PaliGemmaConfig, x, positions, attn_mask):
    """Cache-free decoder pass (keys are the queries' own positions)."""
    mutual = attn_mask & jnp.swapaxes(attn_mask, 1, 2)  # the bidirectional block
    local = (gemma.window_mask(attn_mask, positions, positions, cfg.text.sliding_window, mutual)
             if cfg.text.sliding_window else None)
    pre, _ = gemma.forward(llm, x, positions, attn_mask, cfg=cfg.text, local_mask=local)
    return pre


def _pick(logits):
    """Greedy token and its log-probability."""
    tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32), -1),
                               tok[:, None], axis=-1)[:, 0]
    return tok, logp


def decode_greedy(params, images, prefix_tokens, prefix_mask, valid, *, cfg: PaliGemmaConfig,
                  max_decode_len: int, eos_id: int, pad_id: int = 0):
    """Greedy decoding with a KV cache (jit this; all shapes are static).

    Args:
      params: {"img", "llm"} parameter tree.
      images: float [B, R, R, 3] in [-1, 1].
      prefix_tokens, prefix_mask: int/bool [B, P], right-aligned (see module docstring).
      valid: bool [B]; False rows (batch padding) start finished and cost no decode steps.

    Returns:
      (tokens int [B, max_decode_len], logp float [B, max_decode_len]): after EOS, `pad_id`/0.
    """
    llm = params["llm"]
    x, input_mask = embed_prefix(params, cfg, images, prefix_tokens, prefix_mask)
    b, t0, _ = x.shape
    size = t0 + max_decode_len
    attn = make_attn_mask(input_mask, jnp.zeros_like(input_mask, jnp.int32))
    attn = jnp.pad(attn, ((0, 0), (0, 0), (0, max_decode_len)))
    positions = jnp.cumsum(input_mask, axis=1) - 1
    cache = gemma.empty_cache(cfg.text, b, size, x.dtype)
    seq_len = jnp.sum(input_mask, axis=1)
    # every cache slot's position: the prefix's, then one per decoded token
    slot_pos = jnp.concatenate([positions, seq_len[:, None] + jnp.arange(max_decode_len)[None]], 1)
    window, softcap = cfg.text.sliding_window, cfg.text.final_softcap

    def local(mask, q_positions, bidirectional=None):
        return (gemma.window_mask(mask, q_positions, slot_pos, window, bidirectional)
                if window else None)

    # the prefill is the image+prefix block, all of it bidirectional; decoded tokens are causal
    pre, cache = gemma.forward(llm, x, positions, attn, cache, 0, cfg=cfg.text,
                               local_mask=local(attn, positions, attn))
    logits = gemma.logits_from(llm, pre[:, -1], softcap)
    slots = jnp.pad(input_mask, ((0, 0), (0, max_decode_len)))

    def extend(t, tok, cache, slots):
        slots = slots.at[:, t0 + t].set(True)
        q_pos = (seq_len + t)[:, None]
        pre, cache = gemma.forward(llm, gemma.embed_tokens(llm, tok[:, None]), q_pos,
                                   slots[:, None, :], cache, t0 + t, cfg=cfg.text,
                                   local_mask=local(slots[:, None, :], q_pos))
        return gemma.logits_from(llm, pre[:, 0], softcap), cache, slots

    def body(state):
        t, out, out_logp, cache, logits, done, slots = state
        tok, logp = _pick(logits)
        tok = jnp.where(done, pad_id, tok)
        out = out.at[:, t].set(tok)
        out_logp = out_logp.at[:, t].set(jnp.where(done, 0.0, logp))
        done = done | (tok == eos_id)
        logits, cache, slots = jax.lax.cond(
            jnp.all(done) | (t + 1 >= max_decode_len),
            lambda c, s: (logits, c, s),
            lambda c, s: extend(t, tok, c, s),
            cache, slots)
        return t + 1, out, out_logp, cache, logits, done, slots

    def cond(state):
        return (state[0] < max_decode_len) & ~jnp.all(state[5])

    state = (jnp.int32(0), jnp.full((b, max_decode_len), pad_id, jnp.int32),
             jnp.zeros((b, max_decode_len), jnp.float32), cache, logits,
             ~valid.astype(bool), slots)
    _, out, out_logp, *_ = jax.lax.while_loop(cond, body, state)
    return out, out_logp


# One compilation cache for every loaded model in the process (cfg is a frozen dataclass).
decode_greedy_jit = jax.jit(decode_greedy,
                            static_argnames=("cfg", "max_decode_len", "eos_id", "pad_id"))


@functools.partial(jax.jit, static_argnames=("cfg",))
def _nocache_next_logits(params, images, prefix_tokens, prefix_mask, suffix, t, *, cfg):
    x, input_mask = embed_prefix(params, cfg, images, prefix_tokens, prefix_mask)
    b, t0, _ = x.shape
    m = suffix.shape[1]
    x = jnp.concatenate([x, gemma.embed_tokens(params["llm"], suffix)], axis=1)
    input_mask = jnp.concatenate(
        [input_mask, jnp.broadcast_to(jnp.arange(m)[None] < t, (b, m))], axis=1)
    mask_ar = jnp.concatenate([jnp.zeros((b, t0), jnp.int32), jnp.ones((b, m), jnp.int32)], 1)
    positions = jnp.cumsum(input_mask, axis=1) - 1
    pre = _forward(params["llm"], cfg, x, positions, make_attn_mask(input_mask, mask_ar))
    last = jax.lax.dynamic_index_in_dim(pre, t0 - 1 + t, axis=1, keepdims=False)
    return gemma.logits_from(params["llm"], last, cfg.text.final_softcap)


def decode_greedy_nocache(params, images, prefix_tokens, prefix_mask, valid, *,
                          cfg: PaliGemmaConfig, max_decode_len: int, eos_id: int, pad_id: int = 0):
    """Reference decoder: re-runs the full prefix-LM forward pass for every token (slow; tests)."""
    b = images.shape[0]
    suffix = np.full((b, max_decode_len), pad_id, np.int32)
    logps = np.zeros((b, max_decode_len), np.float32)
    done = ~np.asarray(valid, bool)
    for t in range(max_decode_len):
        if done.all():
            break
        logits = _nocache_next_logits(params, images, prefix_tokens, prefix_mask,
                                      jnp.asarray(suffix), t, cfg=cfg)
        tok, logp = jax.device_get(_pick(logits))
        suffix[:, t] = np.where(done, pad_id, tok)
        logps[:, t] = np.where(done, 0.0, logp)
        done |= suffix[:, t] == eos_id
    return suffix, logps
