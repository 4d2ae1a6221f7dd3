"""PaliGemma model: tiny-config shapes and counts, prefix-LM masking, KV-cache decoding."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tessera.models.paligemma import checkpoint
from tessera.models.paligemma import configs
from tessera.models.paligemma import model
from tessera.models.paligemma import siglip

CFG = configs.tiny_config(vocab_size=64)
MAX_LEN = 10
# cfg, lengths and pad id are static; eos_id stays traced so tests can vary it without recompiling.
DECODE = jax.jit(model.decode_greedy, static_argnames=("cfg", "max_decode_len", "pad_id"))
TEXT_LOGITS = jax.jit(model.text_logits, static_argnames=("cfg",))


@pytest.fixture(scope="module")
def params():
    return model.init_params(0, CFG)


def _inputs(lengths, width=16, seed=1):
    rng = np.random.default_rng(seed)
    b = len(lengths)
    images = rng.uniform(-1, 1, (b, 28, 28, 3)).astype(np.float32)
    tokens = np.zeros((b, width), np.int32)
    mask = np.zeros((b, width), bool)
    for i, n in enumerate(lengths):
        tokens[i, width - n:] = rng.integers(4, CFG.text.vocab_size, n)
        mask[i, width - n:] = True
    return images, tokens, mask


def test_tiny_param_shapes_and_count(params):
    flat = checkpoint.flatten(params)
    assert {k: v.shape for k, v in flat.items()} == checkpoint.param_shapes(CFG)
    v, t = CFG.vision, CFG.text
    vit_block = (4 * v.width + 2 * v.width * v.mlp_dim + v.mlp_dim + v.width
                 + 4 * (v.width * v.width + v.width))
    vit = (14 * 14 * 3 * v.width + v.width + v.num_patches * v.width + v.depth * vit_block
           + 2 * v.width + v.width * t.width + t.width)
    gemma_block = (2 * t.width + t.num_heads * t.width * t.head_dim * 2
                   + 2 * t.num_kv_heads * t.width * t.head_dim + 3 * t.width * t.mlp_dim)
    llm = t.vocab_size * t.width + t.depth * gemma_block + t.width
    assert sum(a.size for a in flat.values()) == vit + llm == 57_824


def test_real_3b_config_parameter_count():
    # PaliGemma-3B-pt-224: 2.92B parameters (SigLIP So400m/14 + projection + Gemma-2B, 257k vocab).
    shapes = checkpoint.param_shapes(configs.paligemma_3b(224))
    assert sum(int(np.prod(s)) for s in shapes.values()) == 2_923_335_408
    assert shapes["img/pos_embedding"] == (1, 256, 1152)
    shapes_896 = checkpoint.param_shapes(configs.paligemma_3b(896))
    assert shapes_896["img/pos_embedding"] == (1, 4096, 1152)


def test_image_encoder_token_shape(params):
    images = np.zeros((2, 28, 28, 3), np.float32)
    out = siglip.encode(params["img"], images, CFG.vision)
    assert out.shape == (2, CFG.vision.num_patches, CFG.text.width)
    with pytest.raises(ValueError, match="multiple of 14"):
        siglip.encode(params["img"], np.zeros((1, 30, 28, 3), np.float32), CFG.vision)


def test_patchify_equals_strided_conv(params):
    kernel = params["img"]["embedding"]["kernel"]
    images = np.random.default_rng(0).normal(size=(2, 28, 28, 3)).astype(np.float32)
    conv = jax.lax.conv_general_dilated(images, kernel, (14, 14), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    patches = siglip.patchify(images, 14) @ kernel.reshape(-1, kernel.shape[-1])
    np.testing.assert_allclose(patches, np.asarray(conv).reshape(2, 4, -1), rtol=1e-5, atol=1e-5)


def test_attn_mask_is_prefix_lm():
    # 2 image + 2 prompt tokens (mask_ar 0), 3 answer tokens (mask_ar 1), last one padding.
    input_mask = jnp.array([[1, 1, 1, 1, 1, 1, 0]], bool)
    mask_ar = jnp.array([[0, 0, 0, 0, 1, 1, 1]])
    expected = np.array([
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ], bool)
    np.testing.assert_array_equal(model.make_attn_mask(input_mask, mask_ar)[0], expected)


def test_forward_is_bidirectional_over_prefix_and_causal_over_answer(params):
    images, tokens, _ = _inputs([12], width=12)
    mask = np.ones((1, 12), bool)
    mask_ar = np.array([[0] * 6 + [1] * 6])  # 6 prefix tokens, 6 answer tokens
    base = np.asarray(TEXT_LOGITS(params, images, tokens, mask, mask_ar, cfg=CFG))

    def changed_positions(pos):
        t = tokens.copy()
        t[0, pos] = (t[0, pos] + 1) % CFG.text.vocab_size
        out = np.asarray(TEXT_LOGITS(params, images, t, mask, mask_ar, cfg=CFG))
        return set(np.nonzero(np.abs(out - base).max(-1)[0] > 1e-4)[0])

    # A late prefix token is seen by every position, the earlier prefix included.
    assert changed_positions(4) == set(range(12))
    # An answer token is seen by itself and later answer tokens only.
    assert changed_positions(8) == set(range(8, 12))
    # The image is seen by every position.
    other = images.copy()
    other[0, :14, :14] *= -1
    out = np.asarray(TEXT_LOGITS(params, other, tokens, mask, mask_ar, cfg=CFG))
    assert (np.abs(out - base).max(-1) > 1e-4).all()


def test_padding_is_ignored(params):
    # The same 5 prompt tokens right-aligned after junk padding, or left-aligned before it: padding
    # is masked out of attention and positions count valid tokens only, so the logits agree.
    images, tokens, _ = _inputs([12], width=12)
    prompt = tokens[:, :5]
    right, left = np.full((1, 12), 3, np.int32), np.full((1, 12), 9, np.int32)
    right[:, 7:], left[:, :5] = prompt, prompt
    right_mask, left_mask = np.arange(12)[None] >= 7, np.arange(12)[None] < 5
    no_ar = np.zeros((1, 12), np.int32)
    a = np.asarray(TEXT_LOGITS(params, images, right, right_mask, no_ar, cfg=CFG))[:, 7:]
    b = np.asarray(TEXT_LOGITS(params, images, left, left_mask, no_ar, cfg=CFG))[:, :5]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def decoded(params):
    images, tokens, mask = _inputs([5, 16, 9])
    valid = np.ones(3, bool)
    cached = DECODE(params, images, tokens, mask, valid, cfg=CFG, max_decode_len=MAX_LEN,
                    eos_id=jnp.int32(-1), pad_id=0)
    return (images, tokens, mask, valid), jax.device_get(cached)


def test_kv_cache_decoding_equals_decoding_without_cache(params, decoded):
    (images, tokens, mask, valid), (ids, logps) = decoded
    ref_ids, ref_logps = model.decode_greedy_nocache(params, images, tokens, mask, valid, cfg=CFG,
                                                     max_decode_len=MAX_LEN, eos_id=-1)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(logps, ref_logps, atol=1e-4)
    # Guard against a vacuous pass: the random model's answers depend on their context.
    assert len(set(ids.ravel().tolist())) >= 6
    assert not all((row == row[0]).all() for row in ids)


def test_batched_decoding_equals_decoding_alone(params, decoded):
    (images, tokens, mask, valid), (ids, _) = decoded
    # Same compiled shape, different neighbours and row order: each example's answer is unchanged.
    order = [2, 0, 1]
    shuffled = DECODE(params, images[order], tokens[order], mask[order], valid, cfg=CFG,
                      max_decode_len=MAX_LEN, eos_id=jnp.int32(-1), pad_id=0)
    np.testing.assert_array_equal(np.asarray(shuffled[0]), ids[order])
    lone = [0, 0, 0]
    alone = DECODE(params, images[lone], tokens[lone], mask[lone], valid, cfg=CFG,
                   max_decode_len=MAX_LEN, eos_id=jnp.int32(-1), pad_id=0)
    np.testing.assert_array_equal(np.asarray(alone[0]), ids[lone])


def test_decoding_stops_at_eos_and_skips_padding_rows(params, decoded):
    (images, tokens, mask, _), (ids, _) = decoded
    eos = int(ids[1, 3])  # make row 1's 4th token the end of its answer
    valid = np.array([True, True, False])
    got, logps = jax.device_get(DECODE(params, images, tokens, mask, valid, cfg=CFG,
                                       max_decode_len=MAX_LEN, eos_id=jnp.int32(eos), pad_id=0))
    for row in range(2):
        first = list(ids[row]).index(eos) if eos in ids[row] else MAX_LEN
        np.testing.assert_array_equal(got[row, :first + 1], ids[row, :first + 1])
        assert (got[row, first + 1:] == 0).all() and (logps[row, first + 1:] == 0).all()
    assert (got[2] == 0).all()  # padding row: never decoded
    ref, _ = model.decode_greedy_nocache(params, images, tokens, mask, valid, cfg=CFG,
                                         max_decode_len=MAX_LEN, eos_id=eos)
    np.testing.assert_array_equal(got, ref)


# PaliGemma 2: a Gemma 2 decoder (post norms, soft caps, local window on even layers). A window
# of 5 and caps of a few units make each of them change the result at these lengths.
G2 = configs.PaliGemmaConfig(CFG.vision, dataclasses.replace(
    configs.gemma2_text(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16,
                        vocab_size=64), attn_softcap=2.0, final_softcap=3.0, sliding_window=5))


def test_gemma2_kv_cache_decoding_with_a_window_equals_decoding_without_cache():
    g2 = model.init_params(2, G2)
    images, tokens, mask = _inputs([5, 16, 9])
    valid = np.ones(3, bool)
    cached, _ = DECODE(g2, images, tokens, mask, valid, cfg=G2, max_decode_len=MAX_LEN,
                       eos_id=jnp.int32(-1), pad_id=0)
    ref, _ = model.decode_greedy_nocache(g2, images, tokens, mask, valid, cfg=G2,
                                         max_decode_len=MAX_LEN, eos_id=-1)
    np.testing.assert_array_equal(np.asarray(cached), ref)
    unwindowed = configs.PaliGemmaConfig(G2.vision, dataclasses.replace(
        G2.text, sliding_window=None))
    other, _ = DECODE(g2, images, tokens, mask, valid, cfg=unwindowed, max_decode_len=MAX_LEN,
                      eos_id=jnp.int32(-1), pad_id=0)
    assert (np.asarray(other) != np.asarray(cached)).any()  # the window is really in effect


def test_gemma2_window_limits_answer_tokens_but_not_the_prefix_block():
    """One local layer only: a change at the first text token (position 4, after 4 image tokens)
    reaches the whole bidirectional prefix block, but answer tokens 5+ positions later not."""
    local_only = configs.PaliGemmaConfig(G2.vision, dataclasses.replace(G2.text, depth=1))
    g2 = model.init_params(2, local_only)
    images, tokens, _ = _inputs([12], width=12)
    mask = np.ones((1, 12), bool)
    mask_ar = np.array([[0] * 6 + [1] * 6])  # text positions 4..9 prefix, 10..15 answer
    base = np.asarray(TEXT_LOGITS(g2, images, tokens, mask, mask_ar, cfg=local_only))
    t = tokens.copy()
    t[0, 0] = (t[0, 0] + 1) % 64
    out = np.asarray(TEXT_LOGITS(g2, images, t, mask, mask_ar, cfg=local_only))
    seen = set(np.nonzero(np.abs(out - base).max(-1)[0] > 1e-5)[0])
    assert seen == set(range(6))  # the prefix block; answers (positions 10+: 6+ back) not


def test_post_norms_mark_a_paligemma_2_checkpoint(tmp_path):
    g2 = model.init_params(2, G2)
    checkpoint.save_checkpoint(str(tmp_path / "g2.npz"), g2, scanned=False)
    _, cfg = checkpoint.load_checkpoint(str(tmp_path / "g2.npz"))
    assert cfg.text.post_norms and cfg.text.final_softcap == 30.0 and cfg.text.sliding_window == 4096
    assert configs.paligemma2("28b").text.query_scale == 144 ** -0.5
    assert configs.paligemma2("3b", 896).text.query_scale == 256 ** -0.5
