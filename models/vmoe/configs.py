"""Sizes and routing options of V-MoE (Riquelme et al. 2021, "Scaling Vision with Sparse Mixture
of Experts"; google-research/vmoe `vmoe/nn/vit_moe.py`, `configs/vmoe_paper/common.py`).

A V-MoE is a ViT whose MLP is replaced, in some blocks, by `num_experts` MLPs and a router that
sends each token to its top `num_selected_experts` (k) experts. Everything but k and the capacity
is read off a checkpoint's arrays (`checkpoint.infer_config`). The routing knobs:

- `capacity_ratio` (C, the authors' `capacity_factor`): each expert takes at most
  `round(k * C * group_tokens / num_experts)` tokens of a group (the paper's formula),
  so C is an inference-time compute knob: below 1 some tokens skip the MoE MLP (only the residual
  passes them on). Default 1.05, the value every V-MoE was trained with
  (`common.get_vmoe_config`); the authors evaluate fine-tuned models at 1.5 and the S/32
  upstream at 4.0. Their code rounds with `ceil` and then up to a multiple of 4
  (`capacity_rounding="ceil", capacity_multiple_of=4` reproduce it; with one image per group that
  makes C coarse, e.g. C=0.5 acts as 0.64 for S/32's 50 tokens).
- `batch_priority` (BPR): tokens claim expert slots in order of their largest routing weight,
  not their position, so a short capacity drops the least confident tokens (the paper's
  Batch Prioritized Routing, what makes C < 1 work). On by default here; the authors trained
  with it off (with C = 1.05 few tokens overflow, so the two rarely differ).
- `images_per_group`: tokens are routed in groups. The authors group 8 images (their
  `group_size = 8 * tokens`); here each image is its own group by default, so an image's labels
  never depend on which images share its batch (or on the batch's padding).
"""
from __future__ import annotations

import dataclasses
import re

POOLS = ("tok", "gap")  # the `cls` token (the authors' classifier='token'), mean of the tokens
ROUNDINGS = ("ceil", "round")

# vmoe_paper/common.py: (hidden, layers, mlp_dim, heads). Their "S" has 8 layers and width 512,
# not the 12-layer, 384-wide ViT-S of later papers.
SIZES = {"S": (512, 8, 2048, 8), "B": (768, 12, 3072, 12), "L": (1024, 24, 4096, 16),
         "H": (1280, 32, 5120, 16)}
_DESCRIPTION = re.compile(r"^(?:ViT-)?(?P<size>[SBLH])/(?P<patch>\d+), E=(?P<experts>\d+), "
                          r"K=(?P<k>\d+), (?P<where>Every|Last) (?P<n>\d+)")


@dataclasses.dataclass(frozen=True)
class VMoEConfig:
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    moe_layers: tuple[int, ...] = ()  # blocks whose MLP is a mixture of experts
    num_experts: int = 8
    num_selected_experts: int = 2  # k: not in the arrays; 2 in every released V-MoE
    patch_size: int = 32
    image_size: int = 224
    num_classes: int = 0  # `head`; 0: no head, embeddings only
    pool: str = "tok"
    representation_size: int = 0  # `pre_logits`, tanh(Dense) before the head (upstream models)
    capacity_ratio: float = 1.05
    batch_priority: bool = True
    capacity_rounding: str = "round"  # "ceil": the authors' code
    capacity_multiple_of: int = 0  # 4: the authors' code; 0: no rounding up
    images_per_group: int = 1
    value_range: tuple[float, float] = (-1.0, 1.0)  # the authors' value_range(-1, 1)

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not a multiple of {self.num_heads} heads")
        if any(not 0 <= i < self.depth for i in self.moe_layers):
            raise ValueError(f"moe_layers {self.moe_layers} outside blocks 0..{self.depth - 1}")
        if not 1 <= self.num_selected_experts <= self.num_experts:
            raise ValueError(f"need 1 <= k <= num_experts, got k={self.num_selected_experts} "
                             f"with {self.num_experts} experts")
        if not self.capacity_ratio > 0:
            raise ValueError(f"capacity_ratio must be > 0, got {self.capacity_ratio}")
        if self.capacity_rounding not in ROUNDINGS:
            raise ValueError(f"capacity_rounding must be one of {ROUNDINGS}")
        if self.images_per_group < 1:
            raise ValueError("images_per_group must be >= 1")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:  # per image: patches plus `cls`, which has a position
        return self.grid ** 2 + int(self.pool == "tok")

    @property
    def group_size(self) -> int:
        return self.num_tokens * self.images_per_group

    @property
    def embed_dim(self) -> int:
        return self.representation_size or self.width


def moe_layers(depth: int, where: str, n: int) -> tuple[int, ...]:
    """The authors' placements: "Every n" = blocks n-1, 2n-1, ...; "Last n" = the last n odd
    blocks (1, 3, 5, ... counted from 0)."""
    if where == "Every":
        return tuple(range(n - 1, depth, n))
    if where == "Last":
        return tuple(range(1, depth, 2))[-n:]
    raise ValueError(f"where must be 'Every' or 'Last', got {where!r}")


def from_description(description: str, *, image_size: int = 224, **options) -> VMoEConfig:
    """A config from the authors' model description, e.g. "ViT-B/16, E=8, K=2, Every 2"
    (`configs/vmoe_paper`); `options` override any field.

    Raises:
      ValueError: a description the authors' format does not match.
    """
    m = _DESCRIPTION.match(description.strip())
    if not m:
        raise ValueError(f"unknown V-MoE description {description!r}; expected e.g. "
                         "'ViT-S/32, E=8, K=2, Last 2'")
    width, depth, mlp_dim, heads = SIZES[m["size"]]
    kw = dict(moe_layers=moe_layers(depth, m["where"], int(m["n"])),
              num_experts=int(m["experts"]), num_selected_experts=int(m["k"]),
              patch_size=int(m["patch"]), image_size=image_size)
    return VMoEConfig(width, depth, mlp_dim, heads, **{**kw, **options})


# The released checkpoints (google-research/vmoe README) and the descriptions they were trained
# from; the name is the checkpoint prefix under gs://vmoe_checkpoints/.
RELEASED = {
    "vmoe_s32_last2_ilsvrc2012_randaug_light1": ("ViT-S/32, E=8, K=2, Last 2", 224, 1000),
    "vmoe_s32_last2_ilsvrc2012_randaug_light1_ft_ilsvrc2012": ("ViT-S/32, E=8, K=2, Last 2",
                                                               384, 1000),
    "vmoe_s32_last2_ilsvrc2012_randaug_medium": ("ViT-S/32, E=8, K=2, Last 2", 224, 1000),
    "vmoe_b16_imagenet21k_randaug_strong": ("ViT-B/16, E=8, K=2, Every 2", 224, 21843),
    "vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012": ("ViT-B/16, E=8, K=2, Every 2", 384,
                                                          1000),
}


def tiny_config(**options) -> VMoEConfig:
    """A few-kilobyte V-MoE for tests: 32 px, 8 px patches (17 tokens), 4 blocks with experts in
    blocks 1 and 3 ("Every 2"), 4 experts, k=2, 5 classes."""
    kw = dict(width=32, depth=4, mlp_dim=48, num_heads=2, moe_layers=(1, 3), num_experts=4,
              num_selected_experts=2, patch_size=8, image_size=32, num_classes=5)
    return VMoEConfig(**{**kw, **options})
