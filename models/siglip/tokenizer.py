"""Text -> token ids for the two-tower text encoder, as big_vision's SigLIP preprocessing does.

big_vision: `tokenize(max_len=64, model=..., eos="sticky", pad_value=1)`. The SentencePiece ids get
an EOS appended, are cut to `seq_len` keeping the EOS last ("sticky"), and are padded with id 1,
which is the EOS of the T5-style tokenizers SigLIP uses (pad 0, eos 1, unk 2). The text tower pools
the last position, so it always reads an EOS. Here the padding is the tokenizer's own EOS id,
which is that 1 for the published tokenizers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tessera.models.sentencepiece_file import SentencePieceFile, train_to_file


class TextTokenizer(SentencePieceFile):
    """A SentencePiece model file (local or gs://) with sticky-EOS padding to a fixed length."""

    def __init__(self, model_proto: bytes):
        super().__init__(model_proto)
        self.eos_id = self.sp.eos_id()
        if self.eos_id < 0:
            raise ValueError("tokenizer has no EOS piece; the text tower pools an EOS token")

    def tokenize(self, texts: Sequence[str], seq_len: int) -> np.ndarray:
        """int32 [len(texts), seq_len]: ids + EOS, cut keeping EOS last, padded with EOS."""
        out = np.full((len(texts), seq_len), self.eos_id, np.int32)
        for row, text in enumerate(texts):
            ids = self.sp.encode(text)[:seq_len - 1] + [self.eos_id]
            out[row, :len(ids)] = ids
        return out


TINY_TEXTS = ("a photo of a cat", "a photo of a dog", "a red car", "a blue car", "a green tree",
              "the house", "a bird in the sky", "two dogs play", "a cat sits on the mat",
              "street sign", "a boat on water", "people walking")


def train_tiny_tokenizer(path: str, vocab_size: int = 96) -> str:
    """Trains a T5-style SentencePiece model (pad 0, eos 1, unk 2, no bos) on a few phrases and
    writes it to `path`: the tiny variant's tokenizer, made on the spot, never downloaded."""
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(TINY_TEXTS, 2)) for _ in range(300)]
    return train_to_file(sentences, path, vocab_size=vocab_size, model_type="unigram", pad_id=0,
                         eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False)
