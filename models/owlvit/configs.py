"""Sizes of OWL-ViT (Minderer et al. 2022), scenic's `projects/owl_vit` text-conditioned detector.

A CLIP image tower (class token, pre-LN, quick_gelu) whose output tokens are each multiplied by
the class token and layer-normalised, a CLIP text tower (causal, pooled at the EOT token), a class
head scoring every image token against every query, and a box head predicting one box per token.
Every size is read off a checkpoint's array shapes (`checkpoint.infer_config`); the published ones
are below. `VARIANTS` use the authors' input sizes (768 px for B/32 and B/16, 840 px for L/14) and
query length 16 (`max_query_length`).

Two details differ between the authors' flax model and the Hugging Face port, and follow the
checkpoint's format: the box head's GELU (flax `nn.gelu`, tanh approximation; HF `nn.GELU()`,
exact) and the epsilon of the merged class-token LayerNorm (flax's default 1e-6; HF reuses the
vision tower's `layer_norm_eps`, 1e-5). CLIP's own LayerNorms use 1e-5 in both.
"""
from __future__ import annotations

import dataclasses

CLIP_VOCAB = 49408  # 256 bytes + 256 bytes</w> + 48894 merges + <|startoftext|> + <|endoftext|>
QUERY_LEN = 16


@dataclasses.dataclass(frozen=True)
class OwlViTConfig:
    patch_size: int
    image_size: int
    vision_width: int
    vision_depth: int
    vision_heads: int
    text_width: int
    text_depth: int
    text_heads: int
    vocab_size: int = CLIP_VOCAB
    seq_len: int = QUERY_LEN
    embed_dim: int = 512  # text projection and class-head output
    exact_gelu: bool = False  # box head: False = flax nn.gelu (scenic), True = torch GELU (HF)
    merged_norm_eps: float = 1e-6  # scenic `merged_class_token` LayerNorm; HF: layer_norm_eps
    vision_norm_eps: float = 1e-5
    text_norm_eps: float = 1e-5

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid ** 2

    @property
    def resolution(self) -> int:
        return self.image_size


VARIANTS = {
    "B/32": OwlViTConfig(32, 768, 768, 12, 12, 512, 12, 8, embed_dim=512),
    "B/16": OwlViTConfig(16, 768, 768, 12, 12, 512, 12, 8, embed_dim=512),
    "L/14": OwlViTConfig(14, 840, 1024, 24, 16, 768, 12, 12, embed_dim=768),
}


def tiny_config(vocab_size: int = 600, image_size: int = 32) -> OwlViTConfig:
    """A few-hundred-kilobyte model with OWL-ViT's structure: a 4x4 grid of 8 px patches."""
    return OwlViTConfig(patch_size=8, image_size=image_size, vision_width=32, vision_depth=2,
                        vision_heads=2, text_width=24, text_depth=2, text_heads=2,
                        vocab_size=vocab_size, seq_len=QUERY_LEN, embed_dim=24)
