"""OWL-ViT (Minderer et al. 2022): open-vocabulary object detection with text queries, in JAX.

`load(path)` takes the authors' scenic flax checkpoint (with CLIP's BPE file, `tokenizer.json` or
`vocab.json` + `merges.txt` beside it) or a Hugging Face `OwlViTForObjectDetection` directory.
The Beam handler is `models/handlers/owlvit.OwlViTHandler`.
"""
from __future__ import annotations

from tessera.models.owlvit.configs import VARIANTS, OwlViTConfig, tiny_config

TOKENIZER_FILES = ("tokenizer.json", "merges.txt", "bpe_simple_vocab_16e6.txt.gz",
                   "bpe_simple_vocab_16e6.txt")


def _tokenizer_in(directory: str) -> str:
    from tessera import fileio
    for name in TOKENIZER_FILES:
        if fileio.exists(fileio.join(directory, name)):
            return fileio.join(directory, name)
    found = sorted(m.path for m in fileio.match_paths(fileio.join(directory, "*bpe*.txt*")))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(f"no CLIP tokenizer in {directory} (tokenizer.json, vocab.json + "
                            "merges.txt or bpe_simple_vocab_16e6.txt.gz)")


def resolve(path: str) -> tuple[str, str]:
    """(checkpoint, tokenizer) of PATH: a Hugging Face directory (config.json), a scenic
    checkpoint file with its tokenizer beside it, or a directory holding one checkpoint file."""
    from tessera import fileio
    from tessera.models.owlvit import hf
    path = path.rstrip("/")
    if hf.is_hf_checkpoint(path):
        return path, _tokenizer_in(path)
    children = [m.path for m in fileio.match_paths(fileio.join(path, "*"))]
    if children:  # a directory: its one file that is not a tokenizer file
        tokenizer = _tokenizer_in(path)
        names = {"vocab.json", *TOKENIZER_FILES}
        ckpts = sorted(c for c in children if c != tokenizer and c.rsplit("/", 1)[-1] not in names
                       and "bpe" not in c.rsplit("/", 1)[-1])
        if len(ckpts) != 1:
            raise FileNotFoundError(f"expected one checkpoint file in {path}, "
                                    f"found {ckpts or 'none'}")
        return ckpts[0], tokenizer
    return path, _tokenizer_in(path.rsplit("/", 1)[0] if "/" in path else ".")


def weights_file(path: str, tokenizer: str | None = None) -> str:
    """A Hugging Face directory's safetensors, else the scenic checkpoint file."""
    from tessera.models.siglip import hf
    return hf.weights_file(path) or (path if tokenizer else resolve(path)[0])


def load(path: str, tokenizer: str | None = None, **kw):
    """The Detector for PATH (and an explicit tokenizer file, if given)."""
    from tessera.models.owlvit.inference import Detector
    checkpoint, found = resolve(path) if tokenizer is None else (path, tokenizer)
    return Detector.load(checkpoint, found, **kw)


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant on disk (scenic msgpack + CLIP BPE file); returns the checkpoint path."""
    from tessera.models.owlvit.tiny import write_tiny as write
    return write(directory, seed)


__all__ = ["VARIANTS", "OwlViTConfig", "load", "resolve", "tiny_config", "write_tiny"]
