"""Where a PaliGemma checkpoint's two files are: the big_vision `.npz` and the SentencePiece model."""
from __future__ import annotations

from tessera.fileio import join, match_paths

TOKENIZER_NAMES = ("tokenizer.model", "paligemma_tokenizer.model")


def weights_file(path: str, tokenizer: str | None = None) -> str:
    """The weights file of PATH (a Hugging Face directory's safetensors, else the .npz): what a
    run manifest checksums. Serves every big_vision family with a tokenizer beside it."""
    from tessera.models.siglip import hf
    if weights := hf.weights_file(path):
        return weights
    return path if tokenizer else resolve_paths(path)[0]


def resolve_paths(path: str) -> tuple[str, str]:
    """(checkpoint .npz, tokenizer .model) for a checkpoint file or a directory holding both.

    A directory must hold exactly one `*.npz` and a `tokenizer.model` (or
    `paligemma_tokenizer.model`, the name big_vision publishes it under, or exactly one `*.model`);
    for a file, the tokenizer is looked up next to it.
    """
    path = path.rstrip("/")
    from tessera.fileio import exists
    if exists(join(path, "config.json")):  # a Hugging Face directory (models/paligemma/hf.py)
        models = sorted(m.path for m in match_paths(join(path, "*.model")))
        hits = [m for name in TOKENIZER_NAMES for m in models if m.rsplit("/", 1)[-1] == name]
        if not hits:
            raise FileNotFoundError(f"no tokenizer.model in {path} (found {models or 'none'})")
        return path, hits[0]
    if path.endswith(".npz"):
        directory, npz = path.rsplit("/", 1)[0] if "/" in path else ".", path
    else:
        directory = path
        found = sorted(m.path for m in match_paths(join(directory, "*.npz")))
        if len(found) != 1:
            raise FileNotFoundError(f"expected exactly one *.npz checkpoint in {directory}, "
                                    f"found {found or 'none'}")
        npz = found[0]
    models = sorted(m.path for m in match_paths(join(directory, "*.model")))
    for name in TOKENIZER_NAMES:
        hits = [m for m in models if m.rsplit("/", 1)[-1] == name]
        if hits:
            return npz, hits[0]
    if len(models) == 1:
        return npz, models[0]
    raise FileNotFoundError(f"no tokenizer.model next to {npz} (found {models or 'none'})")
