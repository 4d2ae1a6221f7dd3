"""A loaded OWL-ViT checkpoint: jitted towers, its tokenizer, and per-token predictions -> boxes.

Images are prepared as the authors' inference code does (scenic `notebooks/inference.py`): padded
at the bottom and right to a square with grey (0.5), resized to the checkpoint's resolution and
normalised with CLIP's mean and std. Boxes therefore come out relative to that square and map
back to pixels by its side, max(height, width). Batches are padded to `batch_size`, so the image
step compiles once per process (and once per number of queries).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from tessera.models.owlvit import hf, model
from tessera.models.owlvit.configs import OwlViTConfig
from tessera.models.owlvit.tokenizer import ClipTokenizer
from tessera.schemas.labels import Box

IMAGE_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # CLIP
IMAGE_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
PAD_VALUE = 0.5


def preprocess(image: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 HxWx3 -> float32 [R, R, 3]: fitted into the top-left of a grey square, normalised."""
    height, width = image.shape[:2]
    side = max(height, width)
    size = (max(1, round(width * resolution / side)), max(1, round(height * resolution / side)))
    if size != (width, height):
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    canvas = np.full((resolution, resolution, 3), PAD_VALUE, np.float32)
    canvas[:size[1], :size[0]] = image.astype(np.float32) / 255.0
    return (canvas - IMAGE_MEAN) / IMAGE_STD


@functools.partial(jax.jit, static_argnames=("cfg",))
def _detect(params, images, queries, *, cfg: OwlViTConfig):
    return model.detect(params, images, queries, cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _embed_queries(params, tokens, *, cfg: OwlViTConfig):
    return model.text_embeddings(params, tokens, cfg)


def to_boxes(logits: np.ndarray, boxes: np.ndarray, names: Sequence[str], height: int,
             width: int, min_score: float, max_boxes: int) -> tuple[Box, ...]:
    """One image's tokens -> its best boxes: each token's best query (sigmoid score), those at or
    above `min_score`, best first, at most `max_boxes`; pixel corners clipped to the image, and a
    box left with no area (it lay in the grey padding) dropped."""
    scores = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    best = np.argmax(scores, axis=1)
    score = scores[np.arange(len(best)), best]
    side = float(max(height, width))
    out = []
    for i in np.argsort(-score, kind="stable"):
        if score[i] < min_score or len(out) == max_boxes:
            break
        cx, cy, w, h = (float(v) * side for v in boxes[i])
        y_min, y_max = (min(max(v, 0.0), float(height)) for v in (cy - h / 2, cy + h / 2))
        x_min, x_max = (min(max(v, 0.0), float(width)) for v in (cx - w / 2, cx + w / 2))
        if y_max > y_min and x_max > x_min:
            out.append(Box(names[best[i]], y_min, x_min, y_max, x_max, float(score[i])))
    return tuple(out)


class Detector:
    """What `models.owlvit.load(path)` returns."""

    def __init__(self, params: dict, cfg: OwlViTConfig, tokenizer: ClipTokenizer, *,
                 batch_size: int = 8, name: str = "owlvit"):
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the text tower only "
                             f"{cfg.vocab_size} embeddings (text/token_embedding)")
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self.cfg, self.tokenizer, self.batch_size, self.name = cfg, tokenizer, batch_size, name

    @classmethod
    def load(cls, checkpoint_path: str, tokenizer_path: str, *, batch_size: int = 8) -> "Detector":
        params, cfg = hf.load_params(checkpoint_path)  # scenic msgpack or HF directory
        tokenizer = ClipTokenizer.from_file(tokenizer_path, vocab_size=cfg.vocab_size)
        return cls(params, cfg, tokenizer, batch_size=batch_size, name=f"owlvit:{checkpoint_path}")

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> query embeddings [len(texts), embed_dim] (unnormalised, as the head wants)."""
        tokens = self.tokenizer.tokenize(texts, self.cfg.seq_len)
        return np.asarray(_embed_queries(self.params, tokens, cfg=self.cfg))

    def predict(self, images: Sequence[np.ndarray], queries: np.ndarray):
        """HxWx3 uint8 images -> (logits [B, P, Q], boxes [B, P, 4] cxcywh of the padded square)."""
        logits, boxes = [], []
        for start in range(0, len(images), self.batch_size):
            chunk = np.stack([preprocess(im, self.resolution)
                              for im in images[start:start + self.batch_size]])
            pad = np.zeros((self.batch_size - len(chunk),) + chunk.shape[1:], np.float32)
            out = _detect(self.params, np.concatenate([chunk, pad]), queries, cfg=self.cfg)
            logits.append(np.asarray(out[0])[:len(chunk)])
            boxes.append(np.asarray(out[1])[:len(chunk)])
        if not logits:
            return (np.zeros((0, self.cfg.num_patches, len(queries)), np.float32),
                    np.zeros((0, self.cfg.num_patches, 4), np.float32))
        return np.concatenate(logits), np.concatenate(boxes)

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str], queries: np.ndarray, *,
               min_score: float = 0.1, max_boxes: int = 100) -> list[tuple[Box, ...]]:
        logits, boxes = self.predict(images, queries)
        return [to_boxes(logits[i], boxes[i], names, im.shape[0], im.shape[1], min_score,
                         max_boxes) for i, im in enumerate(images)]
