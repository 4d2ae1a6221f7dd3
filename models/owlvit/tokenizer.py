"""CLIP's byte-level BPE for OWL-ViT's text queries, through Hugging Face's `tokenizers` library.

Reads the tokenizer files that ship beside real checkpoints: a Hugging Face `tokenizer.json`,
`vocab.json` + `merges.txt`, or CLIP's own `bpe_simple_vocab_16e6.txt.gz` (the merges scenic's
tokenizer reads; the vocabulary is built from them the way CLIP builds it: 256 byte symbols, the
same with `</w>`, one token per merge, then `<|startoftext|>` and `<|endoftext|>`, so EOT has
the highest id and the text tower can pool at `argmax(ids)`). Queries become
`[SOT] + ids + [EOT]`, padded with 0 to the tower's length (scenic's `clip_tokenize_queries`);
a query too long is cut keeping EOT last (as Hugging Face's processor does; scenic's tokenizer
drops it, which pools the wrong token).
"""
from __future__ import annotations

import gzip
import json
from typing import Sequence

import numpy as np

from tessera import fileio

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
CLIP_MERGES = 49152 - 256 - 2  # merges CLIP uses of the 262k in bpe_simple_vocab_16e6.txt.gz
# transformers' CLIP converter: the text is NFC-normalised, whitespace collapsed, lower-cased,
# split into letters / digits / other runs and contractions, then mapped to byte symbols
_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def byte_symbols() -> list[str]:
    """CLIP/GPT-2's printable stand-ins for the 256 bytes, in CLIP's vocabulary order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + n) for n in range(len(others))]


def clip_vocab(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
    return {token: i for i, token in enumerate(tokens)}


def build(vocab: dict[str, int], merges: Sequence[tuple[str, str]]):
    """A `tokenizers.Tokenizer` with CLIP's pipeline over `vocab` and `merges`."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=list(merges), continuing_subword_prefix="",
                              end_of_word_suffix="</w>", fuse_unk=False, unk_token=EOT))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _merge_lines(text: str, limit: int | None) -> list[tuple[str, str]]:
    lines = [line for line in text.split("\n")[1:] if line.strip()]  # line 0: "#version: ..."
    return [tuple(line.split()) for line in lines[:limit]]


class ClipTokenizer:
    """Text queries -> int32 [N, seq_len]; picklable (it ships its JSON, not the Rust object)."""

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer
        self._json = tokenizer_json
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.sot, self.eot = self.tokenizer.token_to_id(SOT), self.tokenizer.token_to_id(EOT)
        if self.sot is None or self.eot is None:
            raise ValueError(f"not a CLIP tokenizer: no {SOT} / {EOT} token")
        self.vocab_size = self.tokenizer.get_vocab_size()

    def __reduce__(self):
        return ClipTokenizer, (self._json,)

    @classmethod
    def from_file(cls, path: str, vocab_size: int | None = None) -> "ClipTokenizer":
        """`tokenizer.json`, `merges.txt` (with `vocab.json` beside it) or CLIP's
        `bpe_simple_vocab_16e6.txt[.gz]` (its first `vocab_size - 514` merges; all of CLIP's
        48894 without a size)."""
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name.endswith(".json") and name != "vocab.json":
            return cls(fileio.read_bytes(path).decode("utf-8"))
        directory = path.rsplit("/", 1)[0] if "/" in path else "."
        if name in ("merges.txt", "vocab.json"):
            vocab = json.loads(fileio.read_bytes(fileio.join(directory, "vocab.json")))
            merges = _merge_lines(fileio.read_bytes(fileio.join(directory, "merges.txt"))
                                  .decode("utf-8"), None)
            return cls(build(vocab, merges).to_str())
        with fileio.open_read(path, uncompressed=True) as f:  # Beam would un-gzip by suffix only
            data = f.read()
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
        limit = CLIP_MERGES if vocab_size is None else vocab_size - 514
        merges = _merge_lines(text, limit)
        return cls(build(clip_vocab(merges), merges).to_str())

    def tokenize(self, texts: Sequence[str], seq_len: int) -> np.ndarray:
        out = np.zeros((len(texts), seq_len), np.int32)
        for row, text in enumerate(texts):
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids[:seq_len - 2]
            ids = [self.sot, *ids, self.eot]
            out[row, :len(ids)] = ids
        return out


TINY_TEXTS = ("a car on the road", "a red roof", "a blue pool", "two cars", "the white roof",
              "a swimming pool", "a tree near a house", "a parking lot with cars", "solar panels",
              "a road", "a truck", "a boat in the pool")


def train_tiny_merges(num_merges: int = 80) -> list[tuple[str, str]]:
    """A few BPE merges learnt on the spot from some aerial-scene phrases: the tiny variant's
    vocabulary (512 byte symbols + merges + 2 specials), never downloaded."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    base = build({SOT: 0, EOT: 1}, [])
    tokenizer = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="</w>"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = base.normalizer, base.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=512 + num_merges, show_progress=False, end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tokenizer.train_from_iterator(list(TINY_TEXTS) * 5, trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def write_clip_bpe(path: str, merges: Sequence[tuple[str, str]]) -> str:
    """CLIP's `bpe_simple_vocab_16e6.txt.gz` format: a version line, then one merge per line."""
    text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    fileio.atomic_write_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
    return path


def write_hf_files(directory: str, merges: Sequence[tuple[str, str]]) -> str:
    """Hugging Face's CLIP tokenizer files: tokenizer.json, vocab.json, merges.txt."""
    vocab = clip_vocab(merges)
    fileio.atomic_write_bytes(fileio.join(directory, "tokenizer.json"),
                              build(vocab, merges).to_str().encode("utf-8"))
    fileio.atomic_write_json(fileio.join(directory, "vocab.json"), vocab)
    text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    fileio.atomic_write_bytes(fileio.join(directory, "merges.txt"), text.encode("utf-8"))
    return fileio.join(directory, "tokenizer.json")
