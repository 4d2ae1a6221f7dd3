"""SigLIP and LiT (big_vision two-tower image-text models) in JAX: zero-shot classification and
image embeddings.

`load(path)` takes a big_vision `.npz` (tokenizer beside it), a directory holding both, or a
Hugging Face SigLIP directory (`config.json`, `model.safetensors`, `spiece.model`), and
scores with sigmoids (SigLIP); `load_lit(path)` scores with a softmax over the classes (LiT, CLIP).
The Beam handler is `models/handlers/siglip.ZeroShotHandler`.
"""
from tessera.models.paligemma.paths import resolve_paths
from tessera.models.siglip.configs import TwoTowerConfig, tiny_config
from tessera.models.siglip.inference import TwoTowerModel as Model


def resolve(path: str) -> tuple[str, str]:
    """(checkpoint, tokenizer) of PATH: a Hugging Face directory (config.json, *.safetensors,
    spiece.model), a big_vision .npz with its tokenizer beside it, or a directory holding both."""
    from tessera import fileio
    from tessera.models.siglip import hf
    if hf.is_hf_checkpoint(path):
        return path.rstrip("/"), fileio.join(path.rstrip("/"), hf.TOKENIZER)
    return resolve_paths(path)


def load(path: str, *, scoring: str = "sigmoid", **kw) -> Model:
    checkpoint, tokenizer = resolve(path)
    return Model.load(checkpoint, tokenizer, scoring=scoring, **kw)


def load_lit(path: str, **kw) -> Model:
    return load(path, scoring="softmax", **kw)


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant on disk (tokenizer + npz); returns the npz path."""
    from tessera.models.siglip.tiny import write_tiny as write
    return write(directory, seed)


__all__ = ["Model", "TwoTowerConfig", "load", "load_lit", "resolve", "resolve_paths", "tiny_config",
           "write_tiny"]
