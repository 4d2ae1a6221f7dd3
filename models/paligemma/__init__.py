"""PaliGemma (SigLIP + Gemma, prefix-LM) in JAX: big_vision npz loading and greedy decoding.

`Model` is the loaded, jitted model; `load(path)` takes a checkpoint .npz (tokenizer beside it) or
a directory holding both. The Beam handler is `models/handlers/paligemma.PaliGemmaModelHandler`.
"""
from tessera.models.paligemma.configs import PaliGemmaConfig, paligemma_3b, tiny_config
from tessera.models.paligemma.inference import PaliGemma as Model
from tessera.models.paligemma.paths import resolve_paths


def load(path: str, **kw) -> Model:
    npz, tokenizer = resolve_paths(path)
    return Model.load(npz, tokenizer, **kw)


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant on disk (tokenizer + npz); `paligemma:DIR` loads it."""
    from tessera.models.paligemma.tiny import write_tiny as write
    return write(directory, seed)


__all__ = ["Model", "load", "resolve_paths", "PaliGemmaConfig", "paligemma_3b", "tiny_config", "write_tiny"]
