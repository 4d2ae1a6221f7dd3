"""PaliGemma (SigLIP + Gemma, prefix-LM) in JAX: big_vision npz loading and greedy decoding.

`Model` is the loaded, jitted model; `load(path)` takes a checkpoint .npz (tokenizer beside it) or
a directory holding both. The Beam handler is `models.paligemma.handler.PaliGemmaModelHandler`.
"""
from models.paligemma.configs import PaliGemmaConfig, paligemma_3b, tiny
from models.paligemma.inference import PaliGemma as Model


def load(path: str, **kw) -> Model:
    from models.paligemma.handler import resolve_paths
    npz, tokenizer = resolve_paths(path)
    return Model.load(npz, tokenizer, **kw)


__all__ = ["Model", "load", "PaliGemmaConfig", "paligemma_3b", "tiny"]
