"""The V-MoE family's tiny variant: a random few-kilobyte classifier written in the authors'
sharded format (`vmoe_tiny_32.index` + two data shards, arrays cut in slices, as a multi-host
save leaves them) with its `labels.txt`."""
from __future__ import annotations

from tessera.models.image_classifier import write_tiny_files
from tessera.models.vmoe import checkpoint
from tessera.models.vmoe.configs import VMoEConfig, tiny_config
from tessera.models.vmoe.model import init_params

TINY_PREFIX = "vmoe_tiny_32"


def write_tiny_checkpoint(path: str, cfg: VMoEConfig | None = None, *, seed: int = 0,
                          **save_kw) -> dict:
    """Saves random params for `cfg` (default tiny) at prefix `path` (or a `.npz`); returns
    the params."""
    params = init_params(seed, cfg or tiny_config())
    save_kw = {"num_shards": 2, "max_rows": 16, **save_kw} if not path.endswith(".npz") else {}
    checkpoint.save_checkpoint(path, params, **save_kw)
    return params


def write_tiny(directory: str, seed: int = 0) -> str:
    """`directory`/vmoe_tiny_32.{index,data-*} + labels.txt; returns the index path
    (`vmoe:PATH` loads it, as it does the prefix or the directory)."""
    return write_tiny_files(directory, TINY_PREFIX, write_tiny_checkpoint, seed) + ".index"
