"""The PaliGemma family's tiny variant: a random few-kilobyte model in big_vision's npz format and
a SentencePiece tokenizer trained on the spot with PaliGemma's special pieces.

Real weights are never fetched at run time, so tests (and `registry.write_tiny("paligemma", DIR)`)
exercise the real loader, decoder and tokenizer code on these files.
"""
from __future__ import annotations


import numpy as np

from tessera import fileio
from tessera.models.paligemma import checkpoint
from tessera.models.paligemma import configs
from tessera.models.paligemma import model
from tessera.models.paligemma.tokenizer import SEPARATOR, PaliGemmaTokenizer, loc_token, seg_token
from tessera.models.sentencepiece_file import train_to_file

TINY_LOCS = (0, 1, 10, 100, 256, 512, 768, 1000, 1023)
TINY_SEGS = (0, 7, 127)
_WORDS = ("a cat sits on the mat", "two dogs play in the park", "caption en", "detect cat ; dog",
          "segment cat", "answer en what is in the image", "ocr", "the quick brown fox jumps",
          "a red car parked near a building", "street sign reads stop", "people walking by")


def train_tiny_tokenizer(path: str, vocab_size: int = 300) -> str:
    """Trains a SentencePiece model with Gemma's special ids (pad 0, eos 1, bos 2, unk 3), "\\n"
    and a few `<locNNNN>`/`<segNNN>` pieces; writes it to `path`."""
    symbols = [SEPARATOR] + [loc_token(i) for i in TINY_LOCS] + [seg_token(i) for i in TINY_SEGS]
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(_WORDS, 3)) for _ in range(400)]
    return train_to_file(
        sentences, path, vocab_size=vocab_size, model_type="bpe", pad_id=0, eos_id=1, bos_id=2,
        unk_id=3, user_defined_symbols=symbols, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=False, hard_vocab_limit=False)


def write_tiny_checkpoint(path: str, cfg: configs.PaliGemmaConfig | None = None, *, seed: int = 0,
                          scanned: bool = True, prefix: str = "") -> dict:
    """Saves random params for `cfg` (default tiny) as a big_vision npz; returns the params."""
    cfg = cfg or configs.tiny_config()
    params = model.init_params(seed, cfg)
    checkpoint.save_checkpoint(path, params, scanned=scanned, prefix=prefix)
    return params


def write_tiny(directory: str, seed: int = 0) -> str:
    """Tokenizer + 28 px checkpoint under `directory` (the form `paligemma:DIR` loads); returns DIR."""
    tokenizer = train_tiny_tokenizer(fileio.join(directory, "tokenizer.model"))
    vocab = PaliGemmaTokenizer.from_file(tokenizer).vocab_size
    write_tiny_checkpoint(fileio.join(directory, "tiny_28.npz"),
                          configs.tiny_config(vocab_size=vocab, image_size=28), seed=seed, scanned=False)
    return directory
