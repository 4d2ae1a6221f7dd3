"""Writing the mixture's shards: fragments merged by slot, one file per shard, atomically.

Slot assignment (`mixture_stages.AssignSlotsFn`) leaves each shard's records in fragment files of
packed (slot, payload) columns; the writer for a shard reads its fragments, orders the records by
slot and writes the shard under a temporary name, then renames it, so no half-written shard ever
carries its final name.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np

from tessera import fileio
from tessera.schemas.mixture import MixtureRecord
from tessera.transforms.mixture.records import NAMESPACE, parquet_bytes, shard_name
from tessera.transforms.mixture.pack import unpack, unpack_fields
from tessera.fileio import join, read_bytes, replace, temp_path
from tessera.transforms.core.progress import count


def fields_record(payload: bytes) -> MixtureRecord:
    """A Parquet-bound shard payload (`pack_fields` of id, image, prefix, suffix, source) -> record."""
    rid, image, prefix, suffix, source = unpack_fields(payload)
    return MixtureRecord(rid.decode("utf-8"), image, prefix.decode("utf-8"), suffix.decode("utf-8"),
                         source.decode("utf-8"))


class WriteShardFn(beam.DoFn):
    """(shard index, paths of its fragment files) -> one shard file in slot order, written
    atomically (temporary file, then rename); yields its path.

    A fragment holds packed (slot, payload) columns (`AssignSlotsFn`). Payloads are framed
    TFRecords (tfrecord) or packed record fields (parquet), see `mixture_prepare.shard_payload`.
    `write_empty` writes a shard that received no records.
    """

    def __init__(self, output_dir: str, num_shards: int, fmt: str):
        self._output_dir, self._num_shards, self._fmt = output_dir, num_shards, fmt

    def process(self, element):
        shard, fragment_paths = element
        slot_columns, payloads = [], []
        for fragment in sorted(fragment_paths):
            (slot_column,), (payload_column,) = unpack(read_bytes(fragment))
            slot_columns.append(slot_column)
            payloads.extend(payload_column)
        order = np.argsort(np.concatenate(slot_columns)).tolist() if slot_columns else []
        yield self._write(shard, [payloads[i] for i in order])

    def path(self, shard: int) -> str:
        return join(self._output_dir, shard_name(shard, self._num_shards, self._fmt))

    def write_empty(self, shard: int) -> str:
        return self._write(shard, [])

    def _write(self, shard: int, payloads: list[bytes]) -> str:
        path = self.path(shard)
        tmp = temp_path(path)
        with fileio.create(tmp) as f:
            if self._fmt == "tfrecord":  # streamed: the shard is not held twice in memory
                for start in range(0, len(payloads), 4096):
                    f.write(b"".join(payloads[start:start + 4096]))
            else:
                f.write(parquet_bytes(fields_record(p) for p in payloads))
        replace(tmp, path)
        count(NAMESPACE, "shards_written")
        count(NAMESPACE, "records_written", len(payloads))
        return path


class WriteEmptyShardsFn(beam.DoFn):
    """Shard index -> writes that shard empty unless `WriteShardFn` wrote it (given as the side
    input of written paths). Why not one GroupByKey with an empty value per shard: on the
    DirectRunner that Flatten would copy every payload once more."""

    def __init__(self, writer: WriteShardFn):
        self._writer = writer

    def setup(self):
        self._seen, self._written = None, set()

    def process(self, shard: int, written_paths):
        if self._seen is not written_paths:  # one set per side-input object, not per shard
            self._seen, self._written = written_paths, set(written_paths)
        if self._writer.path(shard) not in self._written:
            yield self._writer.write_empty(shard)
