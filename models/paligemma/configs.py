"""Model sizes for the PaliGemma architecture (SigLIP image encoder + Gemma decoder).

The 3B numbers follow big_vision: `vit.decode_variant("So400m/14")` for the image tower and
`ppp/gemma.get_config("gemma_2b")` with PaliGemma's vocabulary of 257_152 (256_000 text tokens +
1024 `<locNNNN>` + 128 `<segNNN>`) for the language model.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """SigLIP ViT with pool_type="none": the whole token sequence goes to the LLM."""
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    patch_size: int = 14
    image_size: int = 224

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Gemma decoder; `num_kv_heads < num_heads` is multi-query/grouped attention."""
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    norm_eps: float = 1e-6


@dataclasses.dataclass(frozen=True)
class PaliGemmaConfig:
    vision: VisionConfig
    text: TextConfig

    @property
    def resolution(self) -> int:
        return self.vision.image_size


RESOLUTIONS = (224, 448, 896)
PALIGEMMA_VOCAB = 257_152
NUM_LOC_TOKENS = 1024
NUM_SEG_TOKENS = 128


def paligemma_3b(resolution: int = 224) -> PaliGemmaConfig:
    """PaliGemma 3B (pt/mix checkpoints at 224, 448 or 896 px)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"PaliGemma resolution must be one of {RESOLUTIONS}, got {resolution}")
    return PaliGemmaConfig(
        vision=VisionConfig(width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=14,
                            image_size=resolution),
        text=TextConfig(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1,
                        head_dim=256, vocab_size=PALIGEMMA_VOCAB),
    )


def tiny_config(vocab_size: int = 320, image_size: int = 28, num_kv_heads: int = 1) -> PaliGemmaConfig:
    """A few-kilobyte variant with the same structure, for tests."""
    return PaliGemmaConfig(
        vision=VisionConfig(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=14,
                            image_size=image_size),
        text=TextConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=num_kv_heads,
                        head_dim=16, vocab_size=vocab_size),
    )
