"""The Mixer family's tiny variant: a random few-kilobyte classifier written as the released
files are (`stem/...`, per-layer `MixerBlock_{i}/...`, no prefix) with its `labels.txt`."""
from __future__ import annotations

from tessera.models.image_classifier import write_tiny_files
from tessera.models.mixer import checkpoint
from tessera.models.mixer.configs import MixerConfig, tiny_config
from tessera.models.mixer.model import init_params

TINY_CHECKPOINT = "mixer_tiny_32.npz"


def write_tiny_checkpoint(path: str, cfg: MixerConfig | None = None, *, seed: int = 0,
                          **save_kw) -> dict:
    """Saves random params for `cfg` (default tiny) as a Mixer npz; returns the params."""
    params = init_params(seed, cfg or tiny_config())
    checkpoint.save_checkpoint(path, params, **save_kw)
    return params


def write_tiny(directory: str, seed: int = 0) -> str:
    """`directory`/mixer_tiny_32.npz + labels.txt; returns the npz path (`mixer:PATH` loads it)."""
    return write_tiny_files(directory, TINY_CHECKPOINT, write_tiny_checkpoint, seed)
