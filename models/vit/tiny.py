"""The ViT family's tiny variant: a random few-kilobyte classifier written as a released
big_vision file (`params/...` names, per-layer `encoderblock_{i}`) with its `labels.txt`."""
from __future__ import annotations

from tessera.models.image_classifier import TINY_CLASSES, write_tiny_files
from tessera.models.vit import checkpoint
from tessera.models.vit.configs import ViTConfig, tiny_config
from tessera.models.vit.model import init_params

TINY_CHECKPOINT = "vit_tiny_32.npz"


def write_tiny_checkpoint(path: str, cfg: ViTConfig | None = None, *, seed: int = 0,
                          **save_kw) -> dict:
    """Saves random params for `cfg` (default tiny) as a ViT npz; returns the params."""
    params = init_params(seed, cfg or tiny_config())
    checkpoint.save_checkpoint(path, params, **save_kw)
    return params


def write_tiny_hf(directory: str, seed: int = 0) -> dict:
    """The tiny variant as a Hugging Face `ViTForImageClassification` directory (config.json +
    model.safetensors; `cls` has a position, exact GELU, eps 1e-12, as HF has them); returns the
    params."""
    from tessera.models.vit import hf
    cfg = tiny_config(posemb_with_cls=True, gelu_approximate=False, layer_norm_eps=1e-12)
    params = init_params(seed, cfg)
    hf.write_hf_checkpoint(directory, params, cfg, TINY_CLASSES)
    return params


def write_tiny(directory: str, seed: int = 0) -> str:
    """`directory`/vit_tiny_32.npz + labels.txt; returns the npz path (`vit:PATH` loads it)."""
    return write_tiny_files(directory, TINY_CHECKPOINT, write_tiny_checkpoint, seed)
