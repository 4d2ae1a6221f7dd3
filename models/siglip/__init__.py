"""SigLIP and LiT (big_vision two-tower image-text models) in JAX: zero-shot classification and
image embeddings.

`load(path)` takes a big_vision `.npz` (tokenizer beside it) or a directory holding both, and
scores with sigmoids (SigLIP); `load_lit(path)` scores with a softmax over the classes (LiT, CLIP).
The Beam handler is `models/handlers/siglip.ZeroShotHandler`.
"""
from tessera.models.paligemma.paths import resolve_paths
from tessera.models.siglip.configs import TwoTowerConfig, tiny_config
from tessera.models.siglip.inference import TwoTowerModel as Model


def load(path: str, *, scoring: str = "sigmoid", **kw) -> Model:
    npz, tokenizer = resolve_paths(path)
    return Model.load(npz, tokenizer, scoring=scoring, **kw)


def load_lit(path: str, **kw) -> Model:
    return load(path, scoring="softmax", **kw)


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant on disk (tokenizer + npz); returns the npz path."""
    from tessera.models.siglip.tiny import write_tiny as write
    return write(directory, seed)


__all__ = ["Model", "TwoTowerConfig", "load", "load_lit", "resolve_paths", "tiny_config",
           "write_tiny"]
