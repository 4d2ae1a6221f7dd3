"""big_vision npz loader: every parameter mapped, both layer layouts, the real 3B layout."""
import io

import jax
import ml_dtypes
import numpy as np
import pytest

from tessera.models.paligemma import checkpoint
from tessera.models.paligemma import configs
from tessera.models.paligemma import model
from tessera.models.paligemma.checkpoint import CheckpointError
from tests.fixtures.paligemma import write_tiny_checkpoint

CFG = configs.tiny_config(vocab_size=48)
TEXT_LOGITS = jax.jit(model.text_logits, static_argnames=("cfg",))

# Names, shapes and dtypes of paligemma-3b-pt-224.f16.npz as printed by big_vision's
# `configs/proj/paligemma/finetune_paligemma.ipynb` ("== Model params ==").
REAL_224 = """
img/Transformer/encoder_norm/bias (1152,) float16
img/Transformer/encoder_norm/scale (1152,) float16
img/Transformer/encoderblock/LayerNorm_0/bias (27,1152) float16
img/Transformer/encoderblock/LayerNorm_0/scale (27,1152) float16
img/Transformer/encoderblock/LayerNorm_1/bias (27,1152) float16
img/Transformer/encoderblock/LayerNorm_1/scale (27,1152) float16
img/Transformer/encoderblock/MlpBlock_0/Dense_0/bias (27,4304) float16
img/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel (27,1152,4304) float16
img/Transformer/encoderblock/MlpBlock_0/Dense_1/bias (27,1152) float16
img/Transformer/encoderblock/MlpBlock_0/Dense_1/kernel (27,4304,1152) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/key/bias (27,16,72) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/key/kernel (27,1152,16,72) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/out/bias (27,1152) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/out/kernel (27,16,72,1152) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/query/bias (27,16,72) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/query/kernel (27,1152,16,72) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/value/bias (27,16,72) float16
img/Transformer/encoderblock/MultiHeadDotProductAttention_0/value/kernel (27,1152,16,72) float16
img/embedding/bias (1152,) float16
img/embedding/kernel (14,14,3,1152) float16
img/head/bias (2048,) float16
img/head/kernel (1152,2048) float16
img/pos_embedding (1,256,1152) float16
llm/embedder/input_embedding (257152,2048) float16
llm/final_norm/scale (2048,) float16
llm/layers/attn/attn_vec_einsum/w (18,8,256,2048) float32
llm/layers/attn/kv_einsum/w (18,2,1,2048,256) float32
llm/layers/attn/q_einsum/w (18,8,2048,256) float32
llm/layers/mlp/gating_einsum (18,2,2048,16384) float16
llm/layers/mlp/linear (18,16384,2048) float16
llm/layers/pre_attention_norm/scale (18,2048) float16
llm/layers/pre_ffw_norm/scale (18,2048) float16
"""


def _real_layout():
    """Zero-memory stand-ins (broadcast views) with the real checkpoint's names and shapes."""
    out = {}
    for line in REAL_224.strip().splitlines():
        name, shape, dtype = line.split()
        shape = tuple(int(s) for s in shape.strip("()").split(",") if s)
        out[name] = np.broadcast_to(np.zeros((), dtype), shape)
    return out


def test_real_3b_layout_maps_completely_and_infers_the_3b_config():
    flat = checkpoint.canonicalize({"params/" + k: v for k, v in _real_layout().items()})
    cfg = checkpoint.infer_config(flat)
    assert cfg == configs.paligemma_3b(224)
    checkpoint.check_complete(flat, cfg)  # no missing, unexpected or misshapen array
    assert set(flat) == set(checkpoint.param_shapes(cfg))


def _assert_same_tree(a, b):
    fa, fb = checkpoint.flatten(a), checkpoint.flatten(b)
    assert set(fa) == set(fb)
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


@pytest.mark.parametrize("scanned,prefix", [(True, ""), (False, ""), (True, "params/"),
                                            (False, "params/")])
def test_loader_maps_every_parameter(tmp_path, scanned, prefix):
    path = tmp_path / "tiny.npz"
    source = write_tiny_checkpoint(str(path), CFG, scanned=scanned, prefix=prefix)
    with np.load(path) as npz:
        names = list(npz.files)
    if not scanned:  # the python-loop layout really is per layer
        assert any("encoderblock_1/" in n for n in names) and any("layers/1/" in n for n in names)
        assert not any("encoderblock/" in n for n in names)
    assert all(n.startswith(prefix) for n in names)
    loaded, cfg = checkpoint.load_checkpoint(str(path))
    assert cfg == CFG
    _assert_same_tree(loaded, source)


def test_loaded_model_output_equals_source_params(tmp_path):
    path = tmp_path / "tiny.npz"
    source = write_tiny_checkpoint(str(path), CFG, scanned=False, seed=3)
    loaded, cfg = checkpoint.load_checkpoint(str(path))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 28, 28, 3)).astype(np.float32)
    tokens = rng.integers(0, CFG.text.vocab_size, (2, 8)).astype(np.int32)
    mask = np.ones((2, 8), bool)
    mask_ar = np.array([[0] * 4 + [1] * 4] * 2)
    want = TEXT_LOGITS(source, images, tokens, mask, mask_ar, cfg=CFG)
    got = TEXT_LOGITS(loaded, images, tokens, mask, mask_ar, cfg=cfg)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    other = TEXT_LOGITS(model.init_params(4, CFG), images, tokens, mask, mask_ar, cfg=CFG)
    assert not np.allclose(np.asarray(other), np.asarray(want))


def test_full_multihead_attention_uses_qkv_einsum(tmp_path):
    cfg = configs.tiny_config(vocab_size=48, num_kv_heads=2)
    path = tmp_path / "mha.npz"
    source = write_tiny_checkpoint(str(path), cfg, scanned=False)
    loaded, got_cfg = checkpoint.load_checkpoint(str(path))
    assert got_cfg == cfg and "qkv_einsum" in loaded["llm"]["layers"]["attn"]
    _assert_same_tree(loaded, source)


def _npz_bytes(flat):
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


def _tiny_flat():
    return checkpoint.flatten(model.init_params(0, CFG))


def test_missing_and_unexpected_keys_are_named():
    flat = _tiny_flat()
    del flat["llm/layers/mlp/linear"], flat["img/Transformer/encoderblock/LayerNorm_1/bias"]
    flat["llm/layers/mlp/extra"] = np.zeros(3, np.float32)
    flat["txt/unrelated"] = np.zeros(3, np.float32)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_checkpoint(_npz_bytes(flat))
    for line in ("missing: llm/layers/mlp/linear",
                 "missing: img/Transformer/encoderblock/LayerNorm_1/bias",
                 "unexpected: llm/layers/mlp/extra", "unexpected: txt/unrelated"):
        assert line in str(err.value)


def test_array_needed_to_infer_the_size_is_named():
    flat = _tiny_flat()
    del flat["llm/embedder/input_embedding"]
    with pytest.raises(CheckpointError, match="missing 'llm/embedder/input_embedding'"):
        checkpoint.load_checkpoint(_npz_bytes(flat))


def test_wrong_shape_is_named():
    flat = _tiny_flat()
    flat["img/head/bias"] = np.zeros(CFG.text.width + 1, np.float32)
    with pytest.raises(CheckpointError, match="wrong shape: img/head/bias"):
        checkpoint.load_checkpoint(_npz_bytes(flat))


def test_missing_layer_in_loop_layout():
    flat = checkpoint.unstack_layers(_tiny_flat())
    del flat["llm/layers/0/mlp/linear"]
    with pytest.raises(CheckpointError, match=r"layers \[0\] missing"):
        checkpoint.load_checkpoint(_npz_bytes(flat))


def test_expected_config_mismatch():
    with pytest.raises(CheckpointError, match="expected"):
        checkpoint.load_checkpoint(_npz_bytes(_tiny_flat()), expect=configs.tiny_config(vocab_size=49))


def test_never_unpickles():
    flat = _tiny_flat()
    flat["img/head/bias"] = np.array([{"evil": 1}], dtype=object)
    with pytest.raises(CheckpointError, match="without pickle"):
        checkpoint.read_npz(_npz_bytes(flat))


def test_bfloat16_stored_as_void_is_recovered():
    x = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
    raw = _npz_bytes({"a": x.view("V2")})
    got = checkpoint.read_npz(raw)["a"]
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), np.arange(6).reshape(2, 3))
