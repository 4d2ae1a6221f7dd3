"""ViT image classification (Dosovitskiy et al. 2021) in JAX, with ViT-22B's block options.

`load(path)` takes a ViT `.npz` in the big_vision or the original ViT / AugReg layout (or a
directory holding one), with an optional `labels.txt` beside it, or a Hugging Face
`ViTForImageClassification` directory (config.json + safetensors, `models/vit/hf.py`), and
returns an `ImageClassifier` (top-k classes, L2-normalised pre-logits embeddings). The Beam
handler is `models/handlers/image_classifier.ImageClassifierHandler`.
"""
from __future__ import annotations

from tessera.models.vit.configs import ViTConfig, tiny_config, variant


def load(path: str, **kw):
    """`ImageClassifier` of the checkpoint at `path`; `kw`: class_names, batch_size, value_range."""
    from tessera import fileio
    from tessera.models.image_classifier import LABEL_FILE, ImageClassifier, resolve_paths
    from tessera.models.vit import hf
    from tessera.models.vit.checkpoint import load_checkpoint
    from tessera.models.vit.model import forward
    if hf.is_hf_checkpoint(path):  # class names: --classes, else id2label, else labels.txt
        params, cfg, names = hf.load_params(path)
        kw["class_names"] = kw.get("class_names") or names
        labels = fileio.join(path.rstrip("/"), LABEL_FILE)
        labels = labels if fileio.exists(labels) else None
    else:
        npz, labels = resolve_paths(path)
        params, cfg = load_checkpoint(npz)
    return ImageClassifier.build(params, cfg, forward, labels_path=labels,
                                 name=kw.pop("name", f"vit:{path}"), **kw)


def weights_file(path: str, tokenizer: str | None = None) -> str:
    """A Hugging Face directory's safetensors, else the .npz."""
    from tessera.models.image_classifier import weights_file as npz_file
    from tessera.models.siglip import hf
    return hf.weights_file(path) or npz_file(path)


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant on disk (npz + labels.txt); returns the npz path."""
    from tessera.models.vit.tiny import write_tiny as write
    return write(directory, seed)


__all__ = ["ViTConfig", "load", "tiny_config", "variant", "write_tiny"]
