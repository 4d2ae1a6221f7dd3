"""A SentencePiece model held as its file's bytes: the one base of the families' tokenizers.

`SentencePieceProcessor` does not pickle, but Beam ships handlers (and their tokenizers) to
workers by pickling, so the tokenizer keeps the model proto and rebuilds the processor from it.
"""
from __future__ import annotations

import sentencepiece as spm


class SentencePieceFile:
    """A SentencePiece model file (local or gs://); subclasses add a family's conventions."""

    def __init__(self, model_proto: bytes):
        self._proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def from_file(cls, path: str):
        from tessera.fileio import read_bytes
        return cls(read_bytes(path))

    def __reduce__(self):  # pickles as the proto bytes
        return (type(self), (self._proto,))

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()


def train_to_file(sentences, path: str, **options) -> str:
    """Train a SentencePiece model on `sentences` with `options` (vocab_size, special ids, ...) and
    write it to `path`: how the tiny variants make their tokenizers on the spot."""
    import io
    import os

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buf,
                                   minloglevel=2, **options)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path
