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
    def model_proto(self) -> bytes:
        """The serialised ModelProto (the file's bytes)."""
        return self._proto

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


# Piece types of sentencepiece_model.proto (ModelProto.SentencePiece.Type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fields(proto: bytes):
    """(field number, raw bytes of the whole field) of a serialised message, in order."""
    i = 0
    while i < len(proto):
        start, key, shift = i, 0, 0
        while True:
            key |= (proto[i] & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if not proto[i - 1] & 0x80:
                break
        wire = key & 7
        if wire == 0:
            while proto[i] & 0x80:
                i += 1
            i += 1
        elif wire == 1 or wire == 5:
            i += 8 if wire == 1 else 4
        elif wire == 2:
            length, shift = 0, 0
            while True:
                length |= (proto[i] & 0x7F) << shift
                shift, i = shift + 7, i + 1
                if not proto[i - 1] & 0x80:
                    break
            i += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, proto[start:i]


def with_pieces(model_proto: bytes, pieces) -> bytes:
    """`model_proto` (its trainer and normalizer settings) with exactly `pieces`, a sequence of
    (text, score, type): how a full-size vocabulary is made without training it (and without
    sentencepiece_model_pb2, whose generated code needs a matching protobuf runtime)."""
    import struct
    out = bytearray()
    for text, score, kind in pieces:
        raw = text.encode("utf-8")
        body = (b"\x0a" + _varint(len(raw)) + raw + b"\x15" + struct.pack("<f", score)
                + b"\x18" + _varint(kind))
        out += b"\x0a" + _varint(len(body)) + body
    for number, raw in _fields(model_proto):
        if number != 1:  # 1: the pieces, replaced above
            out += raw
    return bytes(out)
