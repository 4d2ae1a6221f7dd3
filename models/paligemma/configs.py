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
    # Gemma 2 (PaliGemma 2): post-attention and post-MLP norms, soft-capped attention and final
    # logits, local sliding-window attention on even layers, and the query scale 1/sqrt(this)
    post_norms: bool = False
    attn_softcap: float | None = None
    final_softcap: float | None = None
    sliding_window: int | None = None
    query_scale_dim: int | None = None  # None: head_dim

    @property
    def query_scale(self) -> float:
        return (self.query_scale_dim or self.head_dim) ** -0.5


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


GEMMA2_QUERY_SCALE = {2304: 256, 3584: 256, 4608: 144}  # Gemma 2 2B, 9B, 27B: query_pre_attn_scalar


def gemma2_text(width: int, depth: int, mlp_dim: int, num_heads: int, num_kv_heads: int,
                head_dim: int, vocab_size: int = PALIGEMMA_VOCAB) -> TextConfig:
    """A Gemma 2 decoder as PaliGemma 2 uses it (soft caps 50 / 30, 4096-token local window)."""
    return TextConfig(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                      num_kv_heads=num_kv_heads, head_dim=head_dim, vocab_size=vocab_size,
                      post_norms=True, attn_softcap=50.0, final_softcap=30.0,
                      sliding_window=4096, query_scale_dim=GEMMA2_QUERY_SCALE.get(width, head_dim))


PALIGEMMA2_TEXT = {  # Gemma 2 2B / 9B / 27B (big_vision gemma.get_config("gemma2_*"))
    "3b": dict(width=2304, depth=26, mlp_dim=9216, num_heads=8, num_kv_heads=4, head_dim=256),
    "10b": dict(width=3584, depth=42, mlp_dim=14_336, num_heads=16, num_kv_heads=8, head_dim=256),
    "28b": dict(width=4608, depth=46, mlp_dim=36_864, num_heads=32, num_kv_heads=16, head_dim=128),
}


def paligemma2(size: str = "3b", resolution: int = 224) -> PaliGemmaConfig:
    """PaliGemma 2 (Steiner et al. 2024): So400m/14 + Gemma 2 2B, 9B or 27B, at 224/448/896 px."""
    if size not in PALIGEMMA2_TEXT:
        raise ValueError(f"PaliGemma 2 size must be one of {sorted(PALIGEMMA2_TEXT)}, got {size!r}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"PaliGemma resolution must be one of {RESOLUTIONS}, got {resolution}")
    return PaliGemmaConfig(
        vision=VisionConfig(width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=14,
                            image_size=resolution),
        text=gemma2_text(**PALIGEMMA2_TEXT[size]))


def tiny_config(vocab_size: int = 320, image_size: int = 28, num_kv_heads: int = 1) -> PaliGemmaConfig:
    """A few-kilobyte variant with the same structure, for tests."""
    return PaliGemmaConfig(
        vision=VisionConfig(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=14,
                            image_size=image_size),
        text=TextConfig(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=num_kv_heads,
                        head_dim=16, vocab_size=vocab_size),
    )
