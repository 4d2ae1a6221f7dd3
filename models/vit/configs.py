"""Sizes and options of the ViT image classifier (Dosovitskiy et al. 2021; big_vision `vit.py`).

A checkpoint's config is read off its arrays (`checkpoint.infer_config`); `variant("B/16")` gives
the published sizes, for tests, benchmarks and checking a file against its name. ViT-22B's three
changes (Dehghani et al. 2023) are switches, each visible in the arrays:

- `parallel_block`: y = x + MHA(LN(x)) + MLP(LN(x)), one norm per block (no `LayerNorm_1`);
- `qk_norm`: LayerNorm (scale only, over each head's features) on queries and keys (`query_ln`,
  `key_ln`: flax's `normalize_qk`), which kept 22B training from diverging;
- `qkv_bias=False`, `norm_bias=False`: no biases in the query/key/value projections and the
  LayerNorms. The MLP and the attention output keep theirs, as in the paper.

Two numerics switches are not in the arrays: Hugging Face `ViTForImageClassification` weights
(`models/vit/hf.py`) were trained with exact GELU and LayerNorm eps 1e-12, big_vision's with the
tanh GELU and flax's eps 1e-6; running one with the other's shifts the logits.
"""
from __future__ import annotations

import dataclasses

POOLS = ("tok", "gap", "map")  # the `cls` token, the mean of the tokens, MAPHead_0

# big_vision `vit.decode_variant`: (width, depth, mlp_dim, num_heads).
SIZES = {
    "Ti": (192, 12, 768, 3), "S": (384, 12, 1536, 6), "M": (512, 12, 2048, 8),
    "B": (768, 12, 3072, 12), "L": (1024, 24, 4096, 16), "So400m": (1152, 27, 4304, 16),
    "H": (1280, 32, 5120, 16), "g": (1408, 40, 6144, 16), "G": (1664, 48, 8192, 16),
    "e": (1792, 56, 15360, 16), "22B": (6144, 48, 24576, 48),
}
VIT_22B_OPTIONS = dict(parallel_block=True, qk_norm=True, qkv_bias=False, norm_bias=False)


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    patch_size: int = 16
    image_size: int = 224
    num_classes: int = 0  # `head`; 0: no head, embeddings only
    pool: str = "tok"
    representation_size: int = 0  # `pre_logits`, tanh(Dense) before the head (original i21k)
    posemb_with_cls: bool = False  # the `cls` token has a position (original ViT layout)
    parallel_block: bool = False
    qk_norm: bool = False
    qkv_bias: bool = True
    norm_bias: bool = True
    value_range: tuple[float, float] = (-1.0, 1.0)  # big_vision value_range(-1, 1)
    gelu_approximate: bool = True  # tanh GELU (flax nn.gelu); False: exact erf GELU (HF "gelu")
    layer_norm_eps: float = 1e-6  # flax LayerNorm; HF ViTConfig's default is 1e-12

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not a multiple of {self.num_heads} heads")
        if self.posemb_with_cls and self.pool != "tok":
            raise ValueError("posemb_with_cls needs the `cls` token (pool='tok')")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.grid ** 2 + int(self.posemb_with_cls)

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def embed_dim(self) -> int:
        return self.representation_size or self.width


def split_variant(name: str, sizes, family: str) -> tuple[str, int]:
    """("B", 16) for "B/16": the SIZE/PATCH names big_vision gives ViT and Mixer sizes alike.

    Raises:
      ValueError: a size not in `sizes` or a malformed name.
    """
    size, _, patch = name.partition("/")
    if size not in sizes or not patch.isdigit():
        raise ValueError(f"unknown {family} variant {name!r}; expected SIZE/PATCH with SIZE one of "
                         f"{', '.join(sizes)}")
    return size, int(patch)


def variant(name: str, *, image_size: int = 224, **options) -> ViTConfig:
    """A published size, "B/16" or "22B/14" (ViT-22B's options switched on unless overridden).

    Raises:
      ValueError: an unknown size or a malformed name.
    """
    size, patch = split_variant(name, SIZES, "ViT")
    width, depth, mlp_dim, heads = SIZES[size]
    defaults = dict(VIT_22B_OPTIONS) if size == "22B" else {}
    return ViTConfig(width, depth, mlp_dim, heads, patch_size=patch, image_size=image_size,
                     **{**defaults, **options})


def tiny_config(**options) -> ViTConfig:
    """A few-kilobyte ViT (32 px, 8 px patches, 2 layers, 5 classes) for tests."""
    kw = dict(width=32, depth=2, mlp_dim=64, num_heads=2, patch_size=8, image_size=32,
              num_classes=5, pool="tok")
    return ViTConfig(**{**kw, **options})
