"""Sizes of big_vision's two-tower image-text model (`proj/image_text/two_towers.py`).

SigLIP and LiT share the architecture: a ViT image tower (`img/`, big_vision `vit.py`) and a
text transformer (`txt/`, `proj/image_text/text_transformer.py`), each pooled to one vector,
L2-normalised and compared by `zimg @ ztxt.T * exp(t) (+ b)`. They differ in training loss and so in scoring:
SigLIP's logits are independent sigmoids (and it learns the bias `b`), LiT's are a softmax over the
classes. Every size is read off the checkpoint's array shapes (`checkpoint.infer_config`).
"""
from __future__ import annotations

import dataclasses

from tessera.models.paligemma.configs import VisionConfig

POOL_TYPES = ("map", "tok", "gap")  # MAPHead_0 (SigLIP), a learned `cls` token, mean of tokens
SCORINGS = ("sigmoid", "softmax")


@dataclasses.dataclass(frozen=True)
class ImageTowerConfig:
    vit: VisionConfig
    pool: str = "map"
    out_dim: int | None = None  # `img/head`; SigLIP has none: the pooled ViT width is the embedding

    @property
    def embed_dim(self) -> int:
        return self.out_dim or self.vit.width


@dataclasses.dataclass(frozen=True)
class TextTowerConfig:
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    vocab_size: int
    seq_len: int  # fixed by `txt/pos_embedding`; texts are padded to it (64 for SigLIP)
    out_dim: int | None = None  # `txt/head`

    @property
    def embed_dim(self) -> int:
        return self.out_dim or self.width


@dataclasses.dataclass(frozen=True)
class TwoTowerConfig:
    image: ImageTowerConfig
    text: TextTowerConfig
    has_bias: bool = True  # SigLIP learns a logit bias `b`; LiT checkpoints have only `t`

    @property
    def resolution(self) -> int:
        return self.image.vit.image_size


def tiny_config(vocab_size: int = 128, seq_len: int = 16, image_size: int = 28,
                pool: str = "map") -> TwoTowerConfig:
    """A few-kilobyte two-tower model with SigLIP's structure (no image head, a text head)."""
    return TwoTowerConfig(
        image=ImageTowerConfig(VisionConfig(width=32, depth=2, mlp_dim=64, num_heads=2,
                                            patch_size=14, image_size=image_size), pool=pool),
        text=TextTowerConfig(width=24, depth=2, mlp_dim=48, num_heads=2, vocab_size=vocab_size,
                             seq_len=seq_len, out_dim=32))


def so400m_224() -> TwoTowerConfig:
    """SigLIP So400m/14 at 224 px (big_vision `webli_en_so400m_224_57633886.npz`): So400m image
    and text towers, 16 text tokens, 32_000-piece vocabulary, a 1152-d text head, no image head
    (big_vision SigLIP demo: variant So400m/14, emb 1152, text length 16)."""
    so400m = dict(width=1152, depth=27, mlp_dim=4304, num_heads=16)
    return TwoTowerConfig(
        image=ImageTowerConfig(VisionConfig(**so400m, patch_size=14, image_size=224), pool="map"),
        text=TextTowerConfig(**so400m, vocab_size=32_000, seq_len=16, out_dim=1152))
