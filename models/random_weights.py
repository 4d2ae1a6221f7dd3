"""Random real-size checkpoints in the published formats: throughput runs without real weights.

`write(family, DIR)` writes DIR/<family>.npz through the family's own big_vision writer (bfloat16
by default: the loaders recover big_vision's 2-byte void arrays and cast them) and
DIR/tokenizer.model, a SentencePiece model whose vocabulary is exactly the model's, so every id a
decoder can emit decodes. PaliGemma's has 257,152 pieces: Gemma's pad/eos/bos/unk at 0-3, "\\n",
and `<locNNNN>` / `<segNNN>` at 256,000 / 257,024 as in the published tokenizer. The pieces are
written into the proto directly (`sentencepiece_file.with_pieces`): training that many is
impractical. CLI: benchmarks/random_checkpoints.py. Real weights are never fetched.
"""
from __future__ import annotations

import os
import string
import tempfile
import time

import numpy as np

from tessera.models.paligemma import checkpoint as pg_checkpoint
from tessera.models.paligemma import configs as pg_configs
from tessera.models.paligemma.tokenizer import SEPARATOR, loc_token, seg_token
from tessera.models.sentencepiece_file import CONTROL, NORMAL, UNKNOWN, USER_DEFINED, with_pieces
from tessera.models.siglip import checkpoint as sl_checkpoint
from tessera.models.siglip import configs as sl_configs

TINY_PALIGEMMA_VOCAB = 1400  # >= the 1152 location/segmentation pieces + specials + characters
TINY_SIGLIP_VOCAB = 256
FAMILIES = {  # name: (kind, config factory)
    "paligemma2-3b-224": ("paligemma", lambda: pg_configs.paligemma2("3b", 224)),
    "siglip-so400m-224": ("siglip", sl_configs.so400m_224),
    "paligemma-tiny": ("paligemma", lambda: pg_configs.tiny_config(
        vocab_size=TINY_PALIGEMMA_VOCAB, image_size=28)),
    "siglip-tiny": ("siglip", lambda: sl_configs.tiny_config(vocab_size=TINY_SIGLIP_VOCAB)),
}


def _word(k: int) -> str:
    """Bijective base 26: 1 -> a, 26 -> z, 27 -> aa, ..."""
    out = ""
    while k:
        k, r = divmod(k - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _filler(n: int, start: int) -> list[tuple[str, float, int]]:
    """`n` distinct normal pieces ('▁aa', 'aa', '▁ab', ...), scores falling with the id."""
    return [(("▁" if j % 2 == 0 else "") + _word(27 + j // 2), -float(start + j), NORMAL)
            for j in range(n)]


def _characters() -> list[str]:
    """Every printable ASCII character (and '▁', the space), so any ASCII prompt encodes."""
    return ["▁"] + [c for c in string.printable if c.strip() and c != " "]


def paligemma_tokenizer(path: str, vocab_size: int = pg_configs.PALIGEMMA_VOCAB) -> str:
    """PaliGemma's layout: <pad> <eos> <bos> <unk> at 0-3, "\\n", characters, filler, then the 1024
    location and 128 segmentation pieces as the last ids (256,000 / 257,024 at full size)."""
    from tessera.models.paligemma.tiny import train_tiny_tokenizer
    from tessera.models.sentencepiece_file import SentencePieceFile
    with tempfile.TemporaryDirectory() as tmp:  # its trainer/normalizer settings (BPE, identity)
        template = SentencePieceFile.from_file(train_tiny_tokenizer(os.path.join(tmp, "t.model")))
    sp = template.sp
    specials = [(sp.id_to_piece(i), 0.0, UNKNOWN if i == sp.unk_id() else CONTROL)
                for i in range(4)]
    head = specials + [(SEPARATOR, 0.0, USER_DEFINED)]
    head += [(c, -1.0, NORMAL) for c in _characters()]
    tail = ([(loc_token(i), 0.0, USER_DEFINED) for i in range(pg_configs.NUM_LOC_TOKENS)]
            + [(seg_token(i), 0.0, USER_DEFINED) for i in range(pg_configs.NUM_SEG_TOKENS)])
    fill = vocab_size - len(head) - len(tail)
    if fill < 0:
        raise ValueError(f"vocab_size {vocab_size} < the {len(head) + len(tail)} fixed pieces")
    return _write(path, with_pieces(template.model_proto, head + _filler(fill, len(head)) + tail))


def siglip_tokenizer(path: str, vocab_size: int = 32_000) -> str:
    """T5-style layout as SigLIP's c4_en tokenizer: <pad> 0, </s> 1, <unk> 2, then characters and
    filler up to `vocab_size` (unigram)."""
    from tessera.models.sentencepiece_file import SentencePieceFile
    from tessera.models.siglip.tokenizer import train_tiny_tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        template = SentencePieceFile.from_file(train_tiny_tokenizer(os.path.join(tmp, "t.model")))
    sp = template.sp
    head = [(sp.id_to_piece(i), 0.0, UNKNOWN if i == sp.unk_id() else CONTROL) for i in range(3)]
    head += [(c, -2.0, NORMAL) for c in _characters()]
    pieces = head + [(t, -3.0 + s / vocab_size, k)
                     for t, s, k in _filler(vocab_size - len(head), len(head))]
    return _write(path, with_pieces(template.model_proto, pieces))


def _write(path: str, proto: bytes) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(proto)
    return path


def random_flat(shapes: dict, dtype: str = "bfloat16", seed: int = 0,
                big: int = 1 << 22) -> dict[str, np.ndarray]:
    """{name: array} ~ N(0, fan_in^-1/2) (0.02 for biases, norms, embeddings of positions):
    arrays of `big` elements or more are drawn on the default JAX device (the GPU when there is
    one; seconds for 3B), the many small ones with numpy (no compile per shape)."""
    import jax
    import jax.numpy as jnp
    key, rng = jax.random.PRNGKey(seed), np.random.default_rng(seed)
    flat = {}
    for i, (name, shape) in enumerate(sorted(shapes.items())):
        fan_in = shape[-2] if len(shape) >= 2 else 1
        scale = 0.02 if name.endswith(("bias", "scale", "pos_embedding", "probe")) else (
            fan_in ** -0.5)
        if int(np.prod(shape)) >= big:
            x = jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32) * scale
            flat[name] = np.asarray(x.astype(jnp.dtype(dtype)))
            del x
        else:
            flat[name] = (rng.standard_normal(shape, np.float32) * scale).astype(jnp.dtype(dtype))
    return flat


def write(family: str, output: str, dtype: str = "bfloat16", seed: int = 0) -> dict:
    """Checkpoint + tokenizer of `family` under `output`; returns what was written and how long."""
    kind, make_config = FAMILIES[family]
    cfg = make_config()
    start = time.perf_counter()
    os.makedirs(output, exist_ok=True)
    npz = os.path.join(output, f"{family}.npz")
    tokenizer = os.path.join(output, "tokenizer.model")
    if kind == "paligemma":
        flat = random_flat(pg_checkpoint.param_shapes(cfg), dtype, seed)
        paligemma_tokenizer(tokenizer, cfg.text.vocab_size)
        pg_checkpoint.save_checkpoint(npz, pg_checkpoint.unflatten(flat), scanned=True)
    else:
        flat = random_flat(sl_checkpoint.param_shapes(cfg), dtype, seed)
        siglip_tokenizer(tokenizer, cfg.text.vocab_size)
        sl_checkpoint.save_checkpoint(npz, pg_checkpoint.unflatten(flat), scanned=False)
    params = sum(int(a.size) for a in flat.values())
    return {"family": family, "kind": kind, "path": output, "npz": npz, "params": params,
            "dtype": dtype, "bytes": os.path.getsize(npz),
            "seconds": round(time.perf_counter() - start, 2)}
