"""Near-duplicate search over 64-bit hashes by multi-index hashing (Norouzi et al., CVPR 2012).

Why: all pairs within Hamming distance d by brute force is quadratic. Split each hash into m
disjoint chunks; if two hashes differ in at most d bits, at least one chunk differs in at most
floor(d / m) bits (pigeonhole). So a table per chunk, probed with every chunk value within that
radius, finds every true pair and touches only the few records that share a chunk.

Two uses:
- In memory (`MultiIndexHash`): m chosen by a small cost model (probes vs expected candidates),
  which lands near log2(n) bits per chunk, the sublinear regime of the paper; used for
  decontamination lookups. `mih_pairs` is the same search vectorized over all queries at once
  (all pairs of a set; the benchmark's index).
- In Beam (`bucket_keys` + `pairs_in_bucket`): m = d + 1 chunks, radius 0, so the chunk value is
  an exact GroupByKey key. A pair is reported only by the first chunk the two agree on, so each
  pair comes out once no matter how many buckets it shares.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import numpy as np

BITS = 64
BRUTE_FORCE_BELOW = 2048  # below this many stored hashes, a query scans them all with numpy


def chunk_layout(m: int, bits: int = BITS) -> list[tuple[int, int]]:
    """(shift, width) of m nearly equal chunks covering `bits` bits, most significant first."""
    if not 1 <= m <= bits:
        raise ValueError(f"number of chunks must be in [1, {bits}], got {m}")
    widths = [bits // m + (1 if i < bits % m else 0) for i in range(m)]
    layout, shift = [], bits
    for w in widths:
        shift -= w
        layout.append((shift, w))
    return layout


def split(h: int, layout: Sequence[tuple[int, int]]) -> list[int]:
    return [(h >> shift) & ((1 << width) - 1) for shift, width in layout]


def bucket_keys(h: int, d: int) -> list[tuple[int, int]]:
    """(chunk index, chunk value) for the d+1 exact-match buckets of hash h."""
    return list(enumerate(split(h, chunk_layout(d + 1))))


def first_equal_chunk(a: int, b: int, layout: Sequence[tuple[int, int]]) -> int:
    x = a ^ b
    for i, (shift, width) in enumerate(layout):
        if (x >> shift) & ((1 << width) - 1) == 0:
            return i
    return -1


def pairs_in_bucket(hashes: Sequence[int], chunk_index: int, d: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) of a bucket within distance d whose first shared chunk is this one.

    All members of the bucket agree on chunk `chunk_index`; the check on earlier chunks makes the
    pair's owner unique across the d+1 buckets.
    """
    n = len(hashes)
    if n < 2:
        return []
    layout = chunk_layout(d + 1)
    arr = np.asarray(hashes, dtype=np.uint64)
    out = []
    block = 1024  # bounds memory at block * n distances
    for start in range(0, n, block):
        rows = arr[start:start + block]
        dist = np.bitwise_count(rows[:, None] ^ arr[None, :])
        ii, jj = np.nonzero(dist <= d)
        for i, j in zip((ii + start).tolist(), jj.tolist()):
            if i < j and first_equal_chunk(hashes[i], hashes[j], layout) == chunk_index:
                out.append((i, j))
    return out


@functools.lru_cache(maxsize=None)
def flip_masks(width: int, radius: int) -> tuple[int, ...]:
    """XOR masks of every way to flip at most `radius` of `width` bits (0 first)."""
    masks = []
    for r in range(radius + 1):
        for bits in itertools.combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return tuple(masks)


def _probe_cost(n: int, d: int, m: int, bits: int = BITS) -> float:
    """Rough per-query cost of m chunks (units of one dict probe): probes plus candidates."""
    cost = 0.0
    for _, width in chunk_layout(m, bits):
        probes = sum(math.comb(width, r) for r in range(d // m + 1))
        expected_hits = probes * n / 2 ** width
        cost += probes + 10 * min(probes, expected_hits) + 0.05 * expected_hits
    return cost


def default_chunks(n: int, d: int, bits: int = BITS) -> int:
    """The number of chunks with the lowest estimated query cost for n stored hashes."""
    return min(range(1, min(d + 1, bits) + 1), key=lambda m: (_probe_cost(n, d, m, bits), m))


class MultiIndexHash:
    """Exact r-neighbour search over 64-bit hashes: `query(h)` returns every stored index within d."""

    def __init__(self, hashes: Sequence[int], d: int, m: int | None = None,
                 brute_force_below: int = BRUTE_FORCE_BELOW):
        self.d = d
        self.hashes = np.asarray(list(hashes), dtype=np.uint64)
        self.m = m or default_chunks(len(self.hashes), d)
        self.layout = chunk_layout(self.m)
        self.radius = d // self.m
        self.brute_force_below = brute_force_below
        self._masks = [flip_masks(width, self.radius) for _, width in self.layout]
        self.tables: list[dict[int, np.ndarray]] = []
        for shift, width in self.layout:
            values = (self.hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            order = np.argsort(values, kind="stable")
            uniq, starts = np.unique(values[order], return_index=True)
            groups = np.split(order, starts[1:])
            self.tables.append(dict(zip(uniq.tolist(), groups)))

    def __len__(self) -> int:
        return len(self.hashes)

    def candidates(self, h: int) -> np.ndarray:
        """Indices sharing at least one chunk within the radius (a superset of the answer)."""
        found = []
        for table, value, masks in zip(self.tables, split(h, self.layout), self._masks):
            get = table.get
            for mask in masks:
                hit = get(value ^ mask)
                if hit is not None:
                    found.append(hit)
        if not found:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(found))

    def query(self, h: int) -> list[int]:
        """Sorted indices of stored hashes within distance d of h."""
        if len(self.hashes) < self.brute_force_below:  # one vectorized pass beats probing tables
            return np.nonzero(np.bitwise_count(self.hashes ^ np.uint64(h)) <= self.d)[0].tolist()
        cand = self.candidates(h)
        if cand.size == 0:
            return []
        dist = np.bitwise_count(self.hashes[cand] ^ np.uint64(h))
        return cand[dist <= self.d].tolist()

    def nearest(self, h: int) -> tuple[int, int] | None:
        """(index, distance) of the closest stored hash within d, ties to the lowest index."""
        hits = self.query(h)
        if not hits:
            return None
        dist = np.bitwise_count(self.hashes[hits] ^ np.uint64(h))
        k = int(np.argmin(dist))
        return hits[k], int(dist[k])

    def pairs(self) -> list[tuple[int, int]]:
        """All index pairs (i < j) of stored hashes within distance d."""
        out = []
        for i, h in enumerate(self.hashes.tolist()):
            out.extend((i, j) for j in self.query(h) if j > i)
        return out


def _batch_cost(n: int, d: int, m: int, bits: int = BITS) -> float:
    """Rough cost of `mih_pairs` with m chunks: a sorted search per probe mask, plus candidates."""
    cost = 0.0
    for _, width in chunk_layout(m, bits):
        masks = sum(math.comb(width, r) for r in range(d // m + 1))
        cost += masks * (30.0 * n + n * n / 2 ** width)
    return cost


def mih_pairs(hashes: Sequence[int], d: int, m: int | None = None,
              max_candidates: int = 4_000_000) -> list[tuple[int, int]]:
    """All pairs (i < j) within distance d: multi-index hashing, vectorized over all queries.

    For each chunk and each flip mask within the chunk radius, every hash is looked up at once in
    the sorted chunk values (searchsorted); the matches are candidate pairs, verified on the full
    hash. Work grows like n log n per mask plus n^2 / 2^chunk_bits candidates, so with chunks of
    about log2(n) bits it stays far below the n^2 / 2 comparisons of brute force.
    """
    arr = np.asarray(list(hashes), dtype=np.uint64)
    n = len(arr)
    if n < 2:
        return []
    m = m or min(range(1, min(d + 1, BITS) + 1), key=lambda k: (_batch_cost(n, d, k), k))
    found = []
    for shift, width in chunk_layout(m):
        values = (arr >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        for mask in flip_masks(width, d // m):
            probe = values ^ np.uint64(mask)
            lo = np.searchsorted(ordered, probe, "left")
            hits = np.searchsorted(ordered, probe, "right") - lo
            block = max(1, int(max_candidates // max(1.0, hits.mean())))
            for start in range(0, n, block):
                cnt = hits[start:start + block]
                total = int(cnt.sum())
                if total == 0:
                    continue
                query = np.repeat(np.arange(start, start + len(cnt)), cnt)
                first = np.repeat(lo[start:start + block] - (np.cumsum(cnt) - cnt), cnt)
                match = order[first + np.arange(total)]
                keep = query < match
                query, match = query[keep], match[keep]
                close = np.bitwise_count(arr[query] ^ arr[match]) <= d
                found.append(query[close].astype(np.int64) * n + match[close])
    if not found:
        return []
    codes = np.unique(np.concatenate(found))
    return list(zip((codes // n).tolist(), (codes % n).tolist()))


def brute_force_pairs(hashes: Sequence[int], d: int) -> list[tuple[int, int]]:
    """The quadratic baseline: every pair (i < j) within distance d."""
    arr = np.asarray(list(hashes), dtype=np.uint64)
    out = []
    for i in range(len(arr) - 1):
        dist = np.bitwise_count(arr[i + 1:] ^ arr[i])
        out.extend((i, i + 1 + int(j)) for j in np.nonzero(dist <= d)[0])
    return out
