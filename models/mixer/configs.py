"""Sizes of MLP-Mixer (Tolstikhin et al. 2021): patches -> blocks that mix across tokens, then
across channels, each a two-layer MLP -> LayerNorm -> mean over tokens -> head.

A checkpoint's config is read off its arrays (`checkpoint.infer_config`); `variant("B/16")` gives
the published sizes (Table 1 of the paper).
"""
from __future__ import annotations

import dataclasses

# (hidden C, blocks, tokens MLP D_S, channels MLP D_C)
SIZES = {"S": (512, 8, 256, 2048), "B": (768, 12, 384, 3072), "L": (1024, 24, 512, 4096),
         "H": (1280, 32, 640, 5120)}


@dataclasses.dataclass(frozen=True)
class MixerConfig:
    hidden_dim: int
    num_blocks: int
    tokens_mlp_dim: int
    channels_mlp_dim: int
    patch_size: int = 16
    image_size: int = 224
    num_classes: int = 0  # `head`; 0: no head, embeddings only
    value_range: tuple[float, float] = (-1.0, 1.0)  # as the released models were trained

    @property
    def num_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def embed_dim(self) -> int:  # the pre-logits: pooled hidden features
        return self.hidden_dim


def variant(name: str, *, image_size: int = 224, **options) -> MixerConfig:
    """A published size, e.g. "B/16" (Mixer-B/16), "L/32", "H/14".

    Raises:
      ValueError: an unknown size or a malformed name.
    """
    from tessera.models.vit.configs import split_variant
    size, patch = split_variant(name, SIZES, "Mixer")
    return MixerConfig(*SIZES[size], patch_size=patch, image_size=image_size, **options)


def tiny_config(**options) -> MixerConfig:
    """A few-kilobyte Mixer (32 px, 8 px patches, 2 blocks, 5 classes) for tests."""
    kw = dict(hidden_dim=32, num_blocks=2, tokens_mlp_dim=24, channels_mlp_dim=64,
              patch_size=8, image_size=32, num_classes=5)
    return MixerConfig(**{**kw, **options})
