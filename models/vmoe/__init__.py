"""V-MoE image classification (Riquelme et al. 2021, "Scaling Vision with Sparse Mixture of
Experts") in JAX, with Batch Prioritized Routing and the capacity ratio as an inference knob.

`load(path)` takes the authors' sharded checkpoint (PREFIX.index + PREFIX.data-*, as
gs://vmoe_checkpoints publishes them; PATH the prefix, the .index or a directory holding one) or
the same arrays as a `.npz`, with an optional `labels.txt` beside it, and returns an
`ImageClassifier` (top-k classes, L2-normalised pre-logits embeddings). The Beam handler is
`models/handlers/image_classifier.ImageClassifierHandler`.
"""
from __future__ import annotations

from tessera.models.vmoe.configs import VMoEConfig, from_description, tiny_config

ROUTING_OPTIONS = ("capacity_ratio", "num_selected_experts", "batch_priority",
                   "images_per_group", "capacity_rounding", "capacity_multiple_of")


def load(path: str, **kw):
    """`ImageClassifier` of the checkpoint at `path`.

    `kw`: class_names, batch_size, value_range, name, and the routing options (`configs.py`):
    capacity_ratio (default 1.05), num_selected_experts (k, default 2), batch_priority (True),
    images_per_group (1), capacity_rounding, capacity_multiple_of; None keeps the default.
    """
    from tessera.models.image_classifier import ImageClassifier
    from tessera.models.vmoe.checkpoint import load_checkpoint, resolve
    from tessera.models.vmoe.model import capacity, forward
    options = {k: v for k in ROUTING_OPTIONS if (v := kw.pop(k, None)) is not None}
    checkpoint, labels = resolve(path)
    params, cfg = load_checkpoint(checkpoint, **options)
    capacity(cfg)  # a ratio that leaves experts no slot fails here, not in every batch
    return ImageClassifier.build(params, cfg, forward, labels_path=labels,
                                 name=kw.pop("name", f"vmoe:{path}"), **kw)


def weights_file(path: str, tokenizer: str | None = None) -> str:
    """The .npz, or the first data shard of the sharded checkpoint (what a manifest checksums)."""
    from tessera.models.vmoe import checkpoint
    del tokenizer  # V-MoE takes none
    return checkpoint.weights_file(path)


def check_path(path: str) -> None:
    """Fails on the driver when `path` holds no V-MoE checkpoint (a prefix is no file, so the
    registry's existence check cannot see it).

    Raises:
      ValueError: nothing or more than one checkpoint at `path`, or a missing data shard.
    """
    from tessera.models.vmoe.checkpoint import resolve, weights_file
    try:
        resolve(path)
        weights_file(path)
    except (FileNotFoundError, IndexError) as err:
        raise ValueError(f"--model vmoe:{path}: {err or 'no data shards beside the index'}") \
            from None


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant on disk (sharded checkpoint + labels.txt); returns the index path."""
    from tessera.models.vmoe.tiny import write_tiny as write
    return write(directory, seed)


__all__ = ["VMoEConfig", "check_path", "from_description", "load", "tiny_config", "write_tiny"]
