"""Beam: one mixture source config -> raw rows (parsed by `records.py`), Arrow row groups, or
DeadLetters; a corrupt file becomes one dead letter instead of a failed run.

Why files are read by a DoFn of ours rather than Beam's ReadFromParquetBatched / ReadFromTFRecord /
ReadFromText: those raise from inside the runner's read, so one corrupt file among thousands
aborts the whole run with a traceback that does not name it. Here each matched file is read by
one DoFn call (after a Reshuffle, so files spread over workers as Beam's ReadAll transforms do).
Reading a file stops at its first corruption: what was read before it is kept (it is as good as
any other file's records), and the file becomes one `corrupt_file` DeadLetter keyed
`source/path`, whose detail says what failed and where, and how many records of the file were
read before it. Downstream it counts once in `read` and `rejected` like any other letter, so the
stats still balance. Trade-off: a file is never split between workers (Beam does not split
TFRecords either); a source gets its parallelism from its number of files.
"""
from __future__ import annotations

import logging
import pickle

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.fileio import MatchFiles

from tessera import fileio
from tessera.schemas.mixture import SourceConfig
from tessera.schemas.records import DeadLetter
from tessera.transforms.core.arrow_coder import ArrowTableCoder
from tessera.transforms.core.progress import count
from tessera.transforms.core.tf_example import CorruptRecord, read_tfrecords
from tessera.transforms.mixture.records import NAMESPACE, letter, parse_example, parse_json_line

CORRUPT_FILE = "corrupt_file"


class Corruption(Exception):
    """Why reading a file stopped, already phrased for the dead letter (without the format)."""


# ---------------------------------------------------------------- pure: readers of one open file

def parquet_tables(f):
    """Row groups as Arrow tables, as ReadFromParquetBatched gives them."""
    pf = pq.ParquetFile(f)
    n = pf.num_row_groups
    for i in range(n):
        try:
            table = pf.read_row_group(i)
        except Exception as e:  # noqa: BLE001 - any failure of a row group is the file's
            rest = sum(pf.metadata.row_group(j).num_rows for j in range(i, n))
            raise Corruption(f"row group {i} of {n}: {describe(e)} ({rest} rows of row groups "
                             f"{i}..{n - 1} not read, per the footer)") from e
        yield table


def jsonl_lines(f):
    """Lines as str, split like ReadFromText (on \\n, a trailing \\r dropped).

    A line that is not UTF-8 stops the file: the bytes are not the text they claim to be (binary
    data, another encoding, compression under a .jsonl name), and cutting binary data at its
    newline bytes would turn one bad file into a dead letter per fragment.
    """
    offset, number = 0, 0
    while True:
        raw = f.readline()
        if not raw:
            return
        number += 1
        line = raw[:-1] if raw.endswith(b"\n") else raw
        line = line[:-1] if line.endswith(b"\r") else line
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Corruption(f"line {number} (byte offset {offset}) is not UTF-8: {e}") from e
        offset += len(raw)
        yield text[1:] if number == 1 and text.startswith("\ufeff") else text


READERS = {"parquet": parquet_tables, "jsonl": jsonl_lines, "tfrecord": read_tfrecords}


def describe(error: BaseException) -> str:
    """One line: ours (Corruption, CorruptRecord) already say what and where; others get their type."""
    text = str(error) if isinstance(error, (Corruption, CorruptRecord)) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())


def corrupt_file_letter(source: str, fmt: str, path: str, error: BaseException, n_read: int) -> DeadLetter:
    """The dead letter of a file whose reading stopped after `n_read` records."""
    records = f"{n_read} record{'' if n_read == 1 else 's'} of the file read before it (kept)"
    return letter(source, path, "read", CORRUPT_FILE, f"{fmt}: {describe(error)[:400]}; {records}")


# ---------------------------------------------------------------- Beam

class SourceItem:
    """Type hint of what ReadFileFn yields (an Arrow table, a row dict or a DeadLetter); it only
    selects `SourceItemCoder`, so tables are not pickled whenever the SDK estimates sizes."""


class SourceItemCoder(beam.coders.Coder):
    """Arrow IPC for tables (`ArrowTableCoder`), pickle for the rest, one tag byte in front."""

    _tables = ArrowTableCoder()

    def encode(self, value) -> bytes:
        if isinstance(value, pa.Table):
            return b"T" + self._tables.encode(value)
        return b"P" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes):
        if encoded[:1] == b"T":
            return self._tables.decode(encoded[1:])
        return pickle.loads(encoded[1:])

    def estimate_size(self, value) -> int:
        if isinstance(value, pa.Table):
            return value.nbytes
        if isinstance(value, dict):
            return sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in value.values())
        return 64

    def is_deterministic(self) -> bool:
        return False  # never a key

    def to_type_hint(self):
        return SourceItem


beam.coders.registry.register_coder(SourceItem, SourceItemCoder)


class ReadFileFn(beam.DoFn):
    """FileMetadata of one source file -> its parsed rows (Arrow tables for Parquet), then a
    `corrupt_file` DeadLetter if reading stopped early. Counter: `rejected_files:<source>`."""

    def __init__(self, source: SourceConfig):
        self._name, self._fmt = source.name, source.format

    def process(self, file):
        path, n = file.path, 0
        items = self._items(path)
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a file that cannot be read is a dead letter, not a failed run
                count(NAMESPACE, f"rejected_files:{self._name}")
                dead = corrupt_file_letter(self._name, self._fmt, path, e, n)
                logging.getLogger(__name__).warning("source %s: %s: %s", self._name, path, dead.detail)
                yield dead
                return
            if isinstance(item, pa.Table):
                n += item.num_rows
                yield item
            elif self._fmt == "jsonl":
                n += 1
                yield parse_json_line(self._name, path, item)
            else:
                n += 1
                yield parse_example(self._name, item)

    def _items(self, path: str):
        # Parquet is read as stored (as ReadFromParquet does); the others are decompressed by
        # extension (.gz, .bz2, ...), as ReadFromText and ReadFromTFRecord do.
        with fileio.open_read(path, uncompressed=self._fmt == "parquet") as f:
            yield from READERS[self._fmt](f)


class ReadSource(beam.PTransform):
    """One source config -> PCollection of raw row dicts, DeadLetters (unparseable records and
    corrupt files) or, for Parquet, Arrow tables of rows (one element per row group instead of
    one per row: the front of the pipeline is where per-element costs add up)."""

    def __init__(self, source: SourceConfig):
        super().__init__()
        self._source = source

    def expand(self, pbegin):
        return (pbegin
                | "MatchFiles" >> MatchFiles(self._source.path)
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadFiles" >> beam.ParDo(ReadFileFn(self._source)).with_output_types(SourceItem))
