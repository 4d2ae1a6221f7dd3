"""A loaded SigLIP / LiT checkpoint: jitted towers, its tokenizer and how its logits become scores.

Images are squashed to the checkpoint's resolution and scaled to [-1, 1] (big_vision's
`resize(R)|value_range(-1, 1)`, shared with PaliGemma) and run in batches padded to `batch_size`,
so each tower compiles once per process.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tessera.models.paligemma.preprocess import preprocess
from tessera.models.siglip import checkpoint, hf
from tessera.models.siglip import model as two_tower
from tessera.models.siglip.configs import SCORINGS, TwoTowerConfig
from tessera.models.siglip.tokenizer import TextTokenizer


@functools.partial(jax.jit, static_argnames=("cfg",))
def image_embeddings(params, images, *, cfg: TwoTowerConfig):
    """Images float [B, R, R, 3] in [-1, 1] -> L2-normalised [B, D] (one compile per shape)."""
    return two_tower.normalize(two_tower.encode_image(params["img"], images, cfg.image))


@functools.partial(jax.jit, static_argnames=("cfg",))
def text_embeddings(params, tokens, *, cfg: TwoTowerConfig):
    """Token ids [N, seq_len] -> L2-normalised [N, D]."""
    return two_tower.normalize(two_tower.encode_text(params["txt"], tokens, cfg.text))


def scores_from_logits(logits: np.ndarray, scoring: str) -> np.ndarray:
    """sigmoid: each class on its own (SigLIP); softmax: the classes compete (LiT, CLIP)."""
    logits = np.asarray(logits, np.float64)
    if scoring == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if scoring == "softmax":
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")


class TwoTowerModel:
    """What `models.siglip.load(path)` returns."""

    def __init__(self, params: dict, cfg: TwoTowerConfig, tokenizer: TextTokenizer, *,
                 scoring: str = "sigmoid", batch_size: int = 8, name: str = "siglip"):
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        if tokenizer.vocab_size > cfg.text.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} pieces but the text tower "
                             f"only {cfg.text.vocab_size} embeddings (txt/Embed_0/embedding)")
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self.cfg, self.tokenizer, self.scoring = cfg, tokenizer, scoring
        self.batch_size, self.name = batch_size, name

    @classmethod
    def load(cls, checkpoint_path: str, tokenizer_path: str, *, scoring: str = "sigmoid",
             batch_size: int = 8) -> "TwoTowerModel":
        params, cfg = hf.load_params(checkpoint_path)  # big_vision npz or HF directory
        if scoring == "sigmoid" and not cfg.has_bias:
            raise checkpoint.SiglipCheckpointError(
                f"{checkpoint_path}: missing b (SigLIP's logit bias); a LiT checkpoint? use lit:")
        return cls(params, cfg, TextTokenizer.from_file(tokenizer_path), scoring=scoring,
                   batch_size=batch_size, name=f"{'siglip' if scoring == 'sigmoid' else 'lit'}:"
                                               f"{checkpoint_path}")

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    def _batched(self, fn, rows: np.ndarray) -> np.ndarray:
        """fn over `rows` in chunks padded to batch_size (one compiled shape)."""
        out = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            pad = self.batch_size - len(chunk)
            padded = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
            out.append(np.asarray(fn(self.params, padded, cfg=self.cfg))[:len(chunk)])
        dim = self.cfg.image.embed_dim
        return np.concatenate(out) if out else np.zeros((0, dim), np.float32)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 images -> L2-normalised float32 embeddings [len(images), D]."""
        batch = np.stack([preprocess(im, self.resolution) for im in images]) if len(images) else (
            np.zeros((0, self.resolution, self.resolution, 3), np.float32))
        return self._batched(image_embeddings, batch)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised float32 embeddings [len(texts), D]."""
        return self._batched(text_embeddings,
                             self.tokenizer.tokenize(texts, self.cfg.text.seq_len))

    def logits(self, image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(two_tower.logits(self.params, jnp.asarray(image_embeddings),
                                           jnp.asarray(text_embeddings)))

    def scores(self, logits: np.ndarray) -> np.ndarray:
        return scores_from_logits(logits, self.scoring)
