"""The packed batches that carry records through the mixture's shuffles."""
from __future__ import annotations

import numpy as np
import pytest

from tessera.transforms.mixture.pack import pack, pack_fields, pack_parts, packed_len, unpack, unpack_fields
from tessera.transforms.mixture.prepare_stages import pack_metas, pack_records, unpack_metas, unpack_records


def test_pack_round_trips_columns():
    rng = np.random.default_rng(0)
    keys = [int(k) for k in rng.integers(0, 2 ** 63, 50, dtype=np.uint64)] + [2 ** 64 - 1, 0]
    blobs = [rng.bytes(int(n)) for n in rng.integers(0, 300, len(keys))]
    names = [f"id-{i}".encode() for i in range(len(keys))]
    (ints,), (got_names, got_blobs) = unpack(pack([keys], [names, blobs]))
    assert ints.tolist() == keys and got_names == names and got_blobs == blobs
    assert packed_len(pack([keys], [names, blobs])) == len(keys)


@pytest.mark.parametrize("chunk", [1, 50, 1000, 1 << 20])
def test_pack_parts_are_the_same_bytes_in_bounded_pieces(chunk):
    rng = np.random.default_rng(1)
    blobs = [rng.bytes(int(n)) for n in rng.integers(0, 120, 200)]
    slots = list(range(200, 0, -1))
    parts = list(pack_parts([slots], [blobs], chunk_bytes=chunk))
    assert b"".join(parts) == pack([slots], [blobs])
    data_parts = parts[3:]  # header, slots, lengths, then the payload pieces
    assert all(len(p) <= max(chunk, 120) for p in data_parts)
    assert len(data_parts) <= len(blobs)


def test_records_round_trip_with_any_uid_text():
    records = [(2 ** 64 - 5, "cap/id with / and \x00 and é/abc", b"\x00payload"), (7, "ocr/x/1", b"")]
    assert list(zip(*unpack_records(pack_records(records)))) == records


def test_metas_round_trip_with_full_64_bit_hashes():
    metas = [("cap", "cap/a/0123", "ab" * 32, 2 ** 64 - 1, 2 ** 63), ("cap", "cap/b/4567", "cd" * 32, 0, 5)]
    assert unpack_metas("cap", pack_metas(metas)) == metas


def test_empty_batch_and_fields():
    (ints,), (blobs,) = unpack(pack([[]], [[]]))
    assert ints.size == 0 and blobs == [] and packed_len(pack([[]], [[]])) == 0
    assert unpack_fields(pack_fields(("id", b"\xff\xd8", "prefix", "", "src"))) == [
        b"id", b"\xff\xd8", b"prefix", b"", b"src"]


def test_malformed_batches_fail_loudly():
    data = pack([[1, 2]], [[b"ab", b"cde"]])
    with pytest.raises(ValueError, match="different lengths"):
        pack([[1, 2]], [[b"a"]])
    with pytest.raises(ValueError, match="too short"):
        unpack(data[:10])
    with pytest.raises(ValueError, match="cut short|does not match"):
        unpack(data[:-1])
    with pytest.raises(ValueError, match="does not match"):
        unpack(data + b"x")


def test_arrow_table_coder_round_trips_and_estimates_without_encoding():
    import apache_beam as beam  # pylint: disable=import-outside-toplevel
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    from tessera.transforms.core.arrow_coder import ArrowTableCoder  # pylint: disable=import-outside-toplevel
    table = pa.table({"id": ["a", "b", None], "image": [b"\x00" * 10, b"", b"xyz"]})
    coder = beam.coders.registry.get_coder(pa.Table)
    assert isinstance(coder, ArrowTableCoder)
    assert coder.decode(coder.encode(table)).equals(table)
    assert coder.get_impl().estimate_size(table) == table.nbytes
