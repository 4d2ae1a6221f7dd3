"""PaliGemma's SentencePiece tokenizer conventions.

The PaliGemma tokenizer is Gemma's (256_000 pieces) plus 1024 `<locNNNN>` and 128 `<segNNN>`
pieces. A prompt ("prefix") is encoded as BOS + tokens(prompt) + tokens("\\n") and attended to
bidirectionally; the answer ("suffix") is generated until EOS (big_vision PaliGemma colab,
`preprocess_tokens`).
"""
from __future__ import annotations

from tessera.models.sentencepiece_file import SentencePieceFile

SEPARATOR = "\n"


def loc_token(i: int) -> str:
    return f"<loc{i:04d}>"


def seg_token(i: int) -> str:
    return f"<seg{i:03d}>"


class PaliGemmaTokenizer(SentencePieceFile):
    """Wraps a SentencePiece model file (local or gs://) with PaliGemma's prompt format."""

    def __init__(self, model_proto: bytes):
        super().__init__(model_proto)
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self.pad_id = max(self.sp.pad_id(), 0)
        if self.bos_id < 0 or self.eos_id < 0:
            raise ValueError("tokenizer has no BOS/EOS piece; PaliGemma needs both")
        unk = self.sp.unk_id()
        self.loc_ids = {i: self.sp.piece_to_id(loc_token(i)) for i in range(1024)}
        self.loc_ids = {i: t for i, t in self.loc_ids.items() if t != unk}

    def encode_prefix(self, prompt: str) -> list[int]:
        """BOS + prompt + "\\n", the bidirectionally attended part of the input."""
        prompt = prompt.rstrip("\n")
        return [self.bos_id] + self.sp.encode(prompt) + self.sp.encode(SEPARATOR)

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids) -> str:
        """Text of `ids` up to (not including) the first EOS; padding after EOS is dropped."""
        out = []
        for t in ids:
            t = int(t)
            if t == self.eos_id:
                break
            out.append(t)
        return self.sp.decode(out)
