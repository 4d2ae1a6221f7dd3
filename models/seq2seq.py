"""A small Transformer encoder-decoder (flax) for SCAN-style command -> action translation.

Used by `benchmarks/scan_accuracy.py` to show the CFQ paper's effect: near-perfect exact match on a
random split, far lower on an MCD split. Whitespace tokens; a shared-nothing pair of vocabularies
(input words, output actions) with PAD=0, BOS=1, EOS=2. `TINY_CONFIG` / `write_tiny` is the test variant.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.base import JaxModel

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")


TINY_CONFIG = {"d_model": 32, "heads": 2, "layers": 1, "d_ff": 64, "dropout": 0.0}  # tests


@dataclasses.dataclass(frozen=True)
class Config:
    src_vocab: int
    tgt_vocab: int
    max_src_len: int = 12
    max_tgt_len: int = 50
    d_model: int = 128
    heads: int = 4
    layers: int = 3
    d_ff: int = 256
    dropout: float = 0.1



class Vocab:
    """Token <-> id for one side, specials first."""

    def __init__(self, tokens: Sequence[str]):
        self.itos = list(SPECIALS) + sorted(set(tokens) - set(SPECIALS))
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> "Vocab":
        return cls([t for text in texts for t in text.split()])

    def encode(self, text: str, length: int, bos: bool = False) -> np.ndarray:
        ids = ([BOS] if bos else []) + [self.stoi[t] for t in text.split()] + [EOS]
        if len(ids) > length:
            raise ValueError(f"sequence of {len(ids)} tokens exceeds {length}: {text[:60]!r}")
        return np.array(ids + [PAD] * (length - len(ids)), dtype=np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            if i == EOS:
                break
            if i > EOS:
                out.append(self.itos[i])
        return " ".join(out)

    def __len__(self) -> int:
        return len(self.itos)


class _Block(nn.Module):
    cfg: Config
    cross: bool = False

    @nn.compact
    def __call__(self, x, self_mask, memory=None, cross_mask=None, train=False):
        cfg = self.cfg
        drop = lambda y: nn.Dropout(cfg.dropout, deterministic=not train)(y)  # noqa: E731
        h = nn.LayerNorm()(x)
        x = x + drop(nn.MultiHeadDotProductAttention(cfg.heads, qkv_features=cfg.d_model)(h, h, mask=self_mask))
        if self.cross:
            h = nn.LayerNorm()(x)
            x = x + drop(nn.MultiHeadDotProductAttention(cfg.heads, qkv_features=cfg.d_model)(
                h, memory, mask=cross_mask))
        h = nn.LayerNorm()(x)
        h = nn.Dense(cfg.d_model)(nn.relu(nn.Dense(cfg.d_ff)(h)))
        return x + drop(h)


class Model(nn.Module):
    """Pre-LN Transformer encoder-decoder with learned positions; returns target logits."""
    cfg: Config

    def setup(self):
        cfg = self.cfg
        self.src_embed = nn.Embed(cfg.src_vocab, cfg.d_model)
        self.tgt_embed = nn.Embed(cfg.tgt_vocab, cfg.d_model)
        self.src_pos = self.param("src_pos", nn.initializers.normal(0.02), (cfg.max_src_len, cfg.d_model))
        self.tgt_pos = self.param("tgt_pos", nn.initializers.normal(0.02), (cfg.max_tgt_len, cfg.d_model))
        self.encoder = [_Block(cfg) for _ in range(cfg.layers)]
        self.decoder = [_Block(cfg, cross=True) for _ in range(cfg.layers)]
        self.enc_norm = nn.LayerNorm()
        self.dec_norm = nn.LayerNorm()
        self.out = nn.Dense(cfg.tgt_vocab)

    def encode(self, src, train=False):
        mask = nn.make_attention_mask(src != PAD, src != PAD)
        x = self.src_embed(src) + self.src_pos[: src.shape[1]]
        for block in self.encoder:
            x = block(x, mask, train=train)
        return self.enc_norm(x)

    def decode(self, memory, src, tgt_in, train=False):
        causal = nn.combine_masks(nn.make_causal_mask(tgt_in), nn.make_attention_mask(tgt_in != PAD, tgt_in != PAD))
        # BOS is never PAD, and positions after EOS are ignored by the loss, so pad masking is safe.
        cross = nn.make_attention_mask(jnp.ones_like(tgt_in, bool), src != PAD)
        y = self.tgt_embed(tgt_in) + self.tgt_pos[: tgt_in.shape[1]]
        for block in self.decoder:
            y = block(y, causal, memory, cross, train=train)
        return self.out(self.dec_norm(y))

    def __call__(self, src, tgt_in, train=False):
        return self.decode(self.encode(src, train), src, tgt_in, train)


def init_params(cfg: Config, seed: int = 0):
    src = jnp.zeros((1, cfg.max_src_len), jnp.int32).at[:, 0].set(3)
    tgt = jnp.zeros((1, cfg.max_tgt_len), jnp.int32).at[:, 0].set(BOS)
    return Model(cfg).init(jax.random.PRNGKey(seed), src, tgt)["params"]


def loss_fn(params, cfg: Config, src, tgt, rng, train=True):
    """Token cross-entropy of teacher-forced decoding; tgt = [BOS, y..., EOS, PAD...]."""
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    logits = Model(cfg).apply({"params": params}, src, tgt_in, train=train, rngs={"dropout": rng})
    weights = (tgt_out != PAD).astype(jnp.float32)
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), tgt_out[..., None], axis=-1)[..., 0]
    return (ce * weights).sum() / weights.sum()


def greedy_decode(params, cfg: Config, src, steps: int | None = None):
    """Greedy decoding of a batch; returns (batch, steps) token ids (after BOS)."""
    steps = steps or cfg.max_tgt_len - 1
    model = Model(cfg)
    memory = model.apply({"params": params}, src, method=Model.encode)
    tgt = jnp.zeros((src.shape[0], steps + 1), jnp.int32).at[:, 0].set(BOS)

    def step(i, tgt):
        logits = model.apply({"params": params}, memory, src, tgt, method=Model.decode)
        nxt = jnp.argmax(logits[:, i], axis=-1).astype(jnp.int32)
        return tgt.at[:, i + 1].set(nxt)

    return jax.lax.fori_loop(0, steps, step, tgt)[:, 1:]


def save(path: str, params, cfg: Config, src_vocab: Vocab, tgt_vocab: Vocab) -> None:
    """Parameters as .msgpack plus a JSON sidecar (config and vocabularies); never pickle."""
    from tessera.models.params_io import save_params
    from tessera.fileio import atomic_write_json
    save_params(path, params)
    atomic_write_json(path + ".json", {"config": dataclasses.asdict(cfg), "src_vocab": src_vocab.itos,
                                       "tgt_vocab": tgt_vocab.itos})


def load(path: str) -> JaxModel:
    """A JaxModel whose apply_fn maps a (batch, max_src_len) int batch to greedy-decoded ids."""
    from tessera.models.params_io import load_params
    from tessera.fileio import read_bytes
    meta = json.loads(read_bytes(path + ".json"))
    cfg = Config(**meta["config"])
    params = load_params(path)
    return JaxModel(apply_fn=lambda p, batch: greedy_decode(p, cfg, batch), params=params,
                    input_shape=(cfg.max_src_len,), input_dtype="int32", name="scan_seq2seq")


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant (TINY_CONFIG, a few-word SCAN vocabulary) as a real checkpoint + sidecar."""
    from tessera import fileio

    src_vocab = Vocab.from_texts(["jump walk run look twice thrice left right and after"])
    tgt_vocab = Vocab.from_texts(["I_JUMP I_WALK I_RUN I_LOOK I_TURN_LEFT I_TURN_RIGHT"])
    cfg = Config(len(src_vocab), len(tgt_vocab), max_src_len=8, max_tgt_len=12, **TINY_CONFIG)
    path = fileio.join(directory, "seq2seq_tiny.msgpack")
    save(path, init_params(cfg, seed), cfg, src_vocab, tgt_vocab)
    return path
