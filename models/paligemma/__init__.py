"""PaliGemma (SigLIP + Gemma, prefix-LM) in JAX: big_vision npz loading and greedy decoding.

`Model` is the loaded, jitted model; `load(path)` takes a checkpoint .npz (tokenizer beside it) or
a directory holding both. The Beam handler is `models/handlers/paligemma.PaliGemmaModelHandler`.
"""
from tessera.models.paligemma.configs import PaliGemmaConfig, paligemma_3b, tiny
from tessera.models.paligemma.inference import PaliGemma as Model
from tessera.models.paligemma.paths import resolve_paths


def load(path: str, **kw) -> Model:
    npz, tokenizer = resolve_paths(path)
    return Model.load(npz, tokenizer, **kw)


__all__ = ["Model", "load", "resolve_paths", "PaliGemmaConfig", "paligemma_3b", "tiny"]
