"""Slot assignment: exact shares, the prefix bound, repeats, determinism (pure functions)."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from tessera.transforms.mixture import slots


def test_source_totals_literal():
    assert slots.source_totals({"a": 0.5, "b": 0.3, "c": 0.2}, 10) == {"a": 5, "b": 3, "c": 2}
    # 7 * (1/3) = 2.33 each, one slot left goes to the first name among equal remainders
    assert slots.source_totals({"x": 1 / 3, "y": 1 / 3, "z": 1 / 3}, 7) == {"x": 3, "y": 2, "z": 2}


@pytest.mark.parametrize("seed", range(6))
def test_totals_exact_and_every_prefix_within_two(seed):
    rng = np.random.default_rng(seed)
    num_sources = int(rng.integers(2, 12))
    w = rng.dirichlet(np.full(num_sources, rng.choice([0.3, 1.0, 4.0])))
    weights = {f"s{i:02d}": float(v) for i, v in enumerate(w)}
    total = int(rng.integers(50, 2000))
    shares = slots.source_totals(weights, total)
    assert sum(shares.values()) == total
    names = sorted(weights)
    for n in names:
        assert abs(shares[n] - weights[n] * total) < 1
    seq = slots.blend([shares[n] for n in names])
    assert np.bincount(seq, minlength=len(names)).tolist() == [shares[n] for n in names]
    lengths = np.arange(1, total + 1)
    for i, n in enumerate(names):
        assert np.abs(np.cumsum(seq == i) - weights[n] * lengths).max() <= 2
    assert slots.prefix_deviation(seq, [shares[n] for n in names]) <= 1.5


def test_blend_literal_sequence():
    assert slots.blend([2, 1]).tolist() == [0, 1, 0]
    assert slots.blend([1, 0, 2]).tolist() == [2, 0, 2]


def test_slot_positions_inverts_blend():
    shares = [5, 3, 2]
    seq = slots.blend(shares)
    positions = slots.slot_positions(shares)
    for s, pos in enumerate(positions):
        assert (seq[pos] == s).all() and len(pos) == shares[s] and (np.diff(pos) > 0).all()


def test_occurrences_repeat_in_whole_passes():
    size, share = 4, 10  # 10 slots from 4 records: ranks 0,1 used 3 times, ranks 2,3 twice
    uses = {r: list(slots.occurrences(r, size, share)) for r in range(size)}
    assert uses == {0: [0, 4, 8], 1: [1, 5, 9], 2: [2, 6], 3: [3, 7]}
    assert max(len(u) for u in uses.values()) == slots.max_uses(size, share) == 3
    assert sorted(k for u in uses.values() for k in u) == list(range(share))
    assert list(slots.occurrences(5, 10, 3)) == []  # subsampled: rank beyond the share


def test_salted_hash_is_stable_and_salted():
    assert slots.salted_hash(0, "captions/1") == slots.salted_hash(0, "captions/1")
    assert slots.salted_hash(0, "captions/1") != slots.salted_hash(1, "captions/1")
    assert slots.salted_hash(0, "a", "b") != slots.salted_hash(0, "ab")
    assert slots.salted_hash(7, "x") == 0xC192B783CECE2098  # fixed across processes and machines
    assert 0 <= slots.rank_bucket(slots.salted_hash(0, "x")) < 2 ** slots.RANK_BUCKET_BITS


def test_bucket_offsets_give_the_global_sort_rank():
    """offset of a key's bucket + its rank inside the bucket == its rank in one global sort, for
    every key (so swapping any two buckets' offsets, not only the first, fails here)."""
    keys = [slots.salted_hash(0, f"r{i}") for i in range(500)]
    counts = collections.Counter(slots.rank_bucket(k) for k in keys)
    assert len(counts) > 3, "the test needs several buckets"
    offsets = slots.bucket_offsets(counts)
    global_rank = {k: i for i, k in enumerate(sorted(keys))}
    for b in counts:
        members = sorted(k for k in keys if slots.rank_bucket(k) == b)
        assert [offsets[b] + i for i in range(len(members))] == [global_rank[k] for k in members]


def test_resolve_weights_given_and_temperature():
    assert slots.resolve_weights({"a": 2.0, "b": 2.0}, {"a": 1, "b": 100}) == {"a": 0.5, "b": 0.5}
    w = slots.resolve_weights({"a": None, "b": None}, {"a": 100, "b": 400}, temperature=2.0)
    assert w == pytest.approx({"a": 10 / 30, "b": 20 / 30})
    assert slots.resolve_weights({"a": None, "b": None}, {"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    with pytest.raises(ValueError, match="no source has a positive weight"):
        slots.resolve_weights({"a": 0.0}, {"a": 5})


def test_shards_are_contiguous_slot_ranges():
    total, num_shards = 10, 3
    assert [slots.shard_of_slot(j, total, num_shards) for j in range(total)] == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert slots.shard_ranges(total, num_shards) == [(0, 4), (4, 7), (7, 10)]


@pytest.mark.parametrize("totals", [[5, 3, 2], [2, 1], [1, 0, 2], [7, 0, 3, 1], [1000, 1000, 1000],
                                    [4001, 2999, 1500, 500, 1], [0, 0, 9], [12345]])
def test_compiled_blend_is_the_loop(totals):
    loop = slots.blend(totals, compiled=False)
    scan = slots.blend(totals, compiled=True)
    assert scan.dtype == loop.dtype and scan.tolist() == loop.tolist()


def test_compiled_blend_on_random_large_totals():
    rng = np.random.default_rng(7)
    for _ in range(3):
        totals = [int(x) for x in rng.integers(0, 40_000, int(rng.integers(2, 7)))]
        assert np.array_equal(slots.blend(totals, compiled=True), slots.blend(totals, compiled=False))
