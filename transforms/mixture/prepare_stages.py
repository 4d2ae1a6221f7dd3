"""The mixture's first pass: validate, hash and key every record in one DoFn.

Why one DoFn: on every runner a step costs per element, and the front of the pipeline sees every
record. Here raw rows are validated in small batches (so the pHashes of a batch are one
vectorized computation) and sent straight into per-bundle batches for the two shuffles that
follow: the full records by (source, rank bucket), where they get their slots, and small metas
by (source, content-hash prefix), for decontamination and exact dedup. It takes no side input,
which keeps Beam on its fast per-element path. Every consumer sorts what it gets, so how rows
happen to be batched never changes a byte of the output.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows

from tessera import fileio
from tessera.schemas.mixture import FilterConfig, MixtureRecord, SourceConfig
from tessera.schemas.records import DeadLetter
from tessera.transforms.mixture import slots
from tessera.transforms.core.tf_example import tfrecord_frame
from tessera.transforms.mixture.records import NAMESPACE, example_bytes, validate_rows
from tessera.transforms.mixture.pack import pack, pack_fields, unpack
from tessera.transforms.core.progress import count

REJECTED = "rejected"


class KeyedBatches:
    """Per-bundle lists of values per (output tag, key); drained as (key, (label, values)).

    Why: a shuffle's cost is mostly per element; one list per key per bundle moves the same
    values in far fewer elements. `labels` maps each output tag (None: the main output) to the
    label its batches carry, so one GroupByKey can tell several inputs apart; `packers` maps a
    tag to a function that turns its list into one value (`pack_records`) before it is sent.
    """

    def __init__(self, labels: dict, max_items: int, packers: dict | None = None):
        self._labels, self._max, self._packers = labels, max_items, packers or {}
        self._buf: dict = {}
        self._n = 0

    def lists(self, tag) -> dict:
        """key -> list of values of one tag, for hot loops that append directly (then `count`)."""
        return self._buf.setdefault(tag, {})

    def count(self, n: int) -> bool:
        """Records n values appended through `lists`; True when it is time to drain."""
        self._n += n
        return self._n >= self._max

    def drain(self, windowed: bool = False):
        """Yields every batch (as windowed values when called from finish_bundle) and empties."""
        buf, self._buf, self._n = self._buf, {}, 0
        for tag, lists in buf.items():
            packer = self._packers.get(tag)
            for key, values in lists.items():
                element = (key, (self._labels[tag], packer(values) if packer else values))
                if windowed:
                    element = GlobalWindows.windowed_value(element)
                yield element if tag is None else beam.pvalue.TaggedOutput(tag, element)


def shard_payload(record: MixtureRecord, fmt: str) -> bytes:
    """What a shard holds for one record, as bytes: its framed tf.train.Example (encoded once per
    record, however often it repeats), or its fields packed (`pack_fields`) for Parquet."""
    if fmt == "tfrecord":
        return tfrecord_frame(example_bytes(record))
    return pack_fields((record.id, record.image, record.prefix, record.suffix, record.source))


def pack_records(records: list[tuple[int, str, bytes]]) -> bytes:
    """[(order key, uid, payload), ...] -> one packed batch (`mixture_pack`)."""
    return pack([[r[0] for r in records]], [[r[1].encode("utf-8") for r in records], [r[2] for r in records]])


def unpack_records(data: bytes) -> tuple[list[int], list[str], list[bytes]]:
    """`pack_records`' inverse, as (order keys, uids, payloads)."""
    (keys,), (uids, payloads) = unpack(data)
    return keys.tolist(), [u.decode("utf-8") for u in uids], payloads


def pack_metas(metas: list[tuple[str, str, str, int, int]]) -> bytes:
    """[(source, uid, sha, phash, order key), ...] of one source -> one packed batch."""
    return pack([[m[3] for m in metas], [m[4] for m in metas]],
                [[m[1].encode("utf-8") for m in metas], [m[2].encode("ascii") for m in metas]])


def unpack_metas(source: str, data: bytes) -> list[tuple[str, str, str, int, int]]:
    """`pack_metas`' inverse (the source comes from the batch's key)."""
    (phashes, keys), (uids, shas) = unpack(data)
    return [(source, u.decode("utf-8"), sha.decode("ascii"), p, k)
            for u, sha, p, k in zip(uids, shas, phashes.tolist(), keys.tolist())]


def content_key(source: str, sha: str) -> tuple[str, str]:
    """Exact-dedup group of a record: identical content always shares one."""
    return source, sha[:2]


class PrepareFn(beam.DoFn):
    """Raw rows (or DeadLetters from parsing, or Arrow tables of rows) of one source -> batched
    shuffle inputs.

    Main output: ((source, rank bucket), ("rec", packed [(order key, uid, payload), ...])), the
    payload being what the shard writer needs (`shard_payload`), packed by `pack_records`.
    METAS: ((source, sha prefix), ("", packed [(source, uid, sha, phash, order key), ...]))
    (`pack_metas`).
    REJECTED: DeadLetters (validation, filters). EVENTS: ((source, "read"), n).
    """

    METAS, EVENTS = "metas", "events"

    def __init__(self, source: SourceConfig, filters: FilterConfig, seed: int, fmt: str = "tfrecord",
                 rows_per_batch: int = 256, max_items: int = 20_000):
        self._source, self._filters, self._seed, self._fmt = source, filters, seed, fmt
        self._rows_per_batch, self._max_items = rows_per_batch, max_items

    def start_bundle(self):
        self._rows, self._read = [], 0
        self._out = KeyedBatches({None: "rec", self.METAS: ""}, self._max_items,
                                 {None: pack_records, self.METAS: pack_metas})

    def process(self, row):
        if isinstance(row, pa.Table):  # a Parquet row group
            return self._process_table(row)
        self._rows.append(row)
        if len(self._rows) >= self._rows_per_batch:
            return self._flush(windowed=False)
        return None  # not a generator: most rows only join the batch, which then costs nothing

    def _process_table(self, table: pa.Table):
        """Rows become Python objects one batch at a time, so a row group of large images is
        not held twice (Arrow buffers plus Python bytes) all at once."""
        for start in range(0, table.num_rows, self._rows_per_batch):
            self._rows.extend(table.slice(start, self._rows_per_batch).to_pylist())
            if len(self._rows) >= self._rows_per_batch:
                yield from self._flush(windowed=False)

    def finish_bundle(self):
        yield from self._flush(windowed=True)
        yield from self._drain(windowed=True)

    def _drain(self, windowed: bool):
        yield from self._out.drain(windowed)
        if self._read:
            event = ((self._source.name, "read"), self._read)
            count(NAMESPACE, f"read:{self._source.name}", self._read)
            self._read = 0
            yield beam.pvalue.TaggedOutput(
                self.EVENTS, GlobalWindows.windowed_value(event) if windowed else event)

    def _flush(self, windowed: bool):
        rows, self._rows = self._rows, []
        if not rows:
            return
        self._read += len(rows)
        parsed = [r for r in rows if not isinstance(r, DeadLetter)]
        results = iter(validate_rows(parsed, self._source, self._filters, fileio.read_bytes))
        outs = [row if isinstance(row, DeadLetter) else next(results) for row in rows]
        wrap = GlobalWindows.windowed_value if windowed else (lambda x: x)
        records, metas = self._out.lists(None), self._out.lists(self.METAS)
        source, seed, valid = self._source.name, self._seed, 0
        for out in outs:
            if isinstance(out, DeadLetter):
                count(NAMESPACE, f"rejected:{out.reason}")
                yield beam.pvalue.TaggedOutput(REJECTED, wrap(out))
                continue
            record, sha, phash = out
            valid += 1
            uid = f"{source}/{record.id}/{sha[:16]}"
            order_key = slots.salted_hash(seed, uid)
            records.setdefault((source, slots.rank_bucket(order_key)), []).append(
                (order_key, uid, shard_payload(record, self._fmt)))
            metas.setdefault(content_key(source, sha), []).append(
                (source, uid, sha, phash, order_key))
        if self._out.count(2 * valid):
            yield from self._drain(windowed)
