"""Decontamination and deduplication of the mixture, on small metas only (no image bytes).

`ExactDedupFn` sees every record's meta once, grouped by content hash, so it also checks each
content against the eval-image index (a side input: one lookup per group of distinct contents,
not a side-input access per record). Its verdicts go where the slots are assigned, keyed by the
record's slot bucket; the kept records fan out into the d+1 exact-chunk buckets of the
near-duplicate search (`NearDuplicateLosers`).
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from tessera.transforms.mixture import slots
from tessera.transforms.mixture.phash_basis import to_hex
from tessera.transforms.mixture.records import NAMESPACE, letter
from tessera.transforms.mixture.prepare_stages import REJECTED, unpack_metas
from tessera.transforms.mixture.near_dup import BRUTE_FORCE_BELOW, MultiIndexHash, first_equal_chunk, chunk_layout
from tessera.transforms.core.progress import count


def nearest_batch(index: MultiIndexHash | None, phashes: list[int]) -> list[tuple[int, int] | None]:
    """`index.nearest` of each hash: (eval index, distance) or None; ties to the lowest index.

    A small eval set (most are) is one vectorized distance matrix for the whole batch.
    """
    if index is None or not len(index) or not phashes:
        return [None] * len(phashes)
    if len(index) >= BRUTE_FORCE_BELOW:
        return [index.nearest(h) for h in phashes]
    dist = np.bitwise_count(np.array(phashes, dtype=np.uint64)[:, None] ^ index.hashes[None, :])
    best = dist.argmin(axis=1)  # first minimum: the lowest index among ties
    best_dist = dist[np.arange(len(phashes)), best]
    return [(int(i), int(d)) if d <= index.d else None for i, d in zip(best.tolist(), best_dist.tolist())]


def _uid_parts(uid: str) -> tuple[str, str]:
    source, rest = uid.split("/", 1)
    return source, rest.rsplit("/", 1)[0]


class ExactDedupFn(beam.DoFn):
    """Per (source, sha): contaminated content is rejected whole; otherwise the meta with the
    smallest order key is kept and the rest are rejected as duplicates.

    With `exact` off, only records that are identical including their id are collapsed (they
    cannot be told apart downstream). Input: ((source, sha prefix), packed batches of metas,
    `pack_metas`) and, with `eval_d` set, the (phash, path) pairs of the eval images as a side
    input. Outputs, keyed by the record's slot bucket where AssignSlotsFn needs them: main
    ((source, rank bucket), ("drop", [uid])) for each rejected record with a uid of its own (a
    duplicate with the kept uid collapses there anyway), COUNTS ((source, rank bucket), -1) per
    rejected record, REJECTED letters, and NEAR_KEYS ((source, chunk, value), ("", (order keys,
    pHashes, uids))) of the kept records: per bundle, one batch per near-duplicate bucket (d+1
    buckets per record; none for sources in `skip` or when `near_d` is None), the hashes as
    uint64 bytes and the uids as one string (`join_uids`).
    """

    NEAR_KEYS, COUNTS = "near_keys", "counts"

    def __init__(self, exact: bool, near_d: int | None, skip: frozenset = frozenset(),
                 eval_d: int | None = None, max_items: int = 1_000_000):
        self._exact, self._near_d, self._skip, self._max = exact, near_d, skip, max_items
        self._eval_d = eval_d
        self._cache_key, self._index, self._paths = None, None, ()

    def setup(self):
        # the d+1 exact-match buckets of `bucket_keys`, as (shift, mask)
        self._chunks = [] if self._near_d is None else [
            (shift, (1 << width) - 1) for shift, width in chunk_layout(self._near_d + 1)]

    def start_bundle(self):
        self._kept: dict = {}  # source -> ([order keys], [phashes], [uids]) awaiting near-dup keys
        self._n = 0

    def finish_bundle(self):
        for element in self._near_batches():
            yield beam.pvalue.TaggedOutput(self.NEAR_KEYS, GlobalWindows.windowed_value(element))

    def process(self, element, eval_hashes=()):
        (source, _), batches = element
        by_sha: dict = {}
        for _, packed in batches:
            for meta in unpack_metas(source, packed):
                by_sha.setdefault(meta[2], []).append(meta)
        shas = sorted(by_sha)
        if self._eval_d is not None:
            self._update_index(eval_hashes)
        hits = nearest_batch(self._index, [by_sha[sha][0][3] for sha in shas])
        for sha, hit in zip(shas, hits):
            group = by_sha[sha]
            if hit is not None:  # same content, same pHash: the whole group is contaminated
                yield from self._contaminated(group, hit)
            elif len(group) == 1:  # the common case
                self._keep(group[0])
            else:
                yield from self._dedup(group)
        if self._n >= self._max:
            for batch in self._near_batches():
                yield beam.pvalue.TaggedOutput(self.NEAR_KEYS, batch)

    def _update_index(self, eval_hashes):
        key = (len(eval_hashes), id(eval_hashes))
        if key != self._cache_key:
            ordered = sorted(eval_hashes)
            self._index = MultiIndexHash([h for h, _ in ordered], self._eval_d)
            self._paths = [p for _, p in ordered]
            self._cache_key = key

    def _reject(self, meta, stage: str, reason: str, detail: str, drop: bool = True):
        source, rid = _uid_parts(meta[1])
        bucket = (source, slots.rank_bucket(meta[4]))
        count(NAMESPACE, reason)
        yield beam.pvalue.TaggedOutput(self.COUNTS, (bucket, -1))
        if drop:
            yield bucket, ("drop", [meta[1]])
        yield beam.pvalue.TaggedOutput(REJECTED, letter(source, rid, stage, reason, detail))

    def _contaminated(self, group, hit):
        idx, dist = hit
        detail = (f"pHash {to_hex(group[0][3])} within {dist} bits of eval image "
                  f"{self._paths[idx]}")
        for meta in group:
            yield from self._reject(meta, "decontaminate", "contaminated", detail)

    def _keep(self, meta) -> None:
        source, uid, _, phash, order_key = meta
        if self._near_d is None or source in self._skip:
            return
        lists = self._kept.get(source)
        if lists is None:
            lists = self._kept[source] = ([], [], [])
        lists[0].append(order_key)
        lists[1].append(phash)
        lists[2].append(uid)
        self._n += 1

    def _near_batches(self):
        """Kept records -> one packed batch per (source, chunk, chunk value), vectorized."""
        kept, self._kept, self._n = self._kept, {}, 0
        for source, (keys, hashes, uids) in kept.items():
            keys = np.array(keys, dtype=np.uint64)
            hashes = np.array(hashes, dtype=np.uint64)
            uids = np.array(uids, dtype=object)
            for chunk, (shift, mask) in enumerate(self._chunks):
                values = (hashes >> np.uint64(shift)) & np.uint64(mask)
                order = np.argsort(values, kind="stable")
                uniq, starts = np.unique(values[order], return_index=True)
                for value, members in zip(uniq.tolist(), np.split(order, starts[1:])):
                    yield (source, chunk, value), ("", (keys[members].tobytes(), hashes[members].tobytes(),
                                                        join_uids(uids[members].tolist())))

    def _dedup(self, metas):
        ordered = sorted(metas, key=lambda m: (m[4], m[1]))
        kept = set()
        for i, meta in enumerate(ordered):
            uid = meta[1]
            if (self._exact and i == 0) or (not self._exact and uid not in kept):
                kept.add(uid)
                self._keep(meta)
                continue
            yield from self._reject(meta, "dedup_exact", "duplicate", f"same content as {ordered[0][1]}",
                                    drop=uid not in kept)


def join_uids(uids: list[str]) -> str | list[str]:
    """One string per batch instead of one coder item per uid (this shuffle carries d+1 per
    record); a list when some uid holds the separator."""
    joined = "\x00".join(uids)
    return joined if joined.count("\x00") == len(uids) - 1 else uids


def split_uids(joined: str | list[str]) -> list[str]:
    return joined.split("\x00") if isinstance(joined, str) else joined


def bucket_pairs(hashes: np.ndarray, chunk_index: int, d: int) -> list[tuple[int, int]]:
    """`pairs_in_bucket` over a uint64 array: the upper triangle of the distance matrix for small
    buckets, `_sub_bucket_pairs` for large ones; only the (rare) close pairs cost Python work."""
    n = len(hashes)
    if n > 400:  # measured crossover: below it the matrix is cheaper than the sorts
        return _sub_bucket_pairs(hashes, chunk_index, d)
    layout = chunk_layout(d + 1)
    out = []
    block = 128
    for start in range(0, n - 1, block):  # rows start.. against columns start..: the triangle
        rows = hashes[start:start + block]
        close = np.bitwise_count(rows[:, None] ^ hashes[None, start:]) <= d
        close[:, :len(rows)] &= _UPPER[:len(rows), :len(rows)]
        for i, j in zip(*(idx.tolist() for idx in np.nonzero(close))):
            i, j = i + start, j + start
            if first_equal_chunk(int(hashes[i]), int(hashes[j]), layout) == chunk_index:
                out.append((i, j))
    return out


_UPPER = np.triu(np.ones((128, 128), dtype=bool), k=1)


def _sub_bucket_pairs(hashes: np.ndarray, chunk_index: int, d: int) -> list[tuple[int, int]]:
    """Pigeonhole once more: members of a bucket agree on its chunk, so a pair within d differs
    in at most d of the other bits; split those into d+1 sub-chunks and the pair agrees on one.
    Candidates (members sharing a sub-chunk value: all pairs within each run of a sort) get a
    full distance; work grows with the candidates, not with the square of the bucket. Narrow
    sub-chunk values sort as uint8/uint16 (numpy's radix sort) and give their runs by bincount;
    distances are taken in sorted order, and members looked up only for the close pairs."""
    n = len(hashes)
    layout = chunk_layout(d + 1)
    shift, width = layout[chunk_index]
    high = (hashes >> np.uint64(shift + width)) << np.uint64(shift) if shift + width < 64 else 0
    rest = high | (hashes & np.uint64((1 << shift) - 1))  # the 64 - width other bits
    positions = np.arange(n)
    found_a, found_b = [], []
    for sub_shift, sub_width in chunk_layout(d + 1, 64 - width):
        # d >= 1 means d+1 >= 2 chunks, so a sub-chunk is at most 16 bits wide (32 other bits / 2)
        values = ((rest >> np.uint64(sub_shift)) & np.uint64((1 << sub_width) - 1)).astype(
            np.uint8 if sub_width <= 8 else np.uint16)
        order = np.argsort(values, kind="stable")
        ends = np.cumsum(np.bincount(values, minlength=1 << sub_width))[values[order]]  # run ends
        later = ends - positions - 1  # run members after each sorted position
        total = int(later.sum())
        if not total:
            continue
        first = np.repeat(positions, later)
        second = first + 1 + np.arange(total) - np.repeat(np.cumsum(later) - later, later)
        in_order = hashes[order]
        close = np.bitwise_count(in_order[first] ^ in_order[second]) <= d
        found_a.append(order[first[close]])
        found_b.append(order[second[close]])
    if not found_a:
        return []
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    codes = np.unique(np.minimum(a, b) * n + np.maximum(a, b))  # a pair may share several sub-chunks
    i, j = codes // n, codes % n
    x = hashes[i] ^ hashes[j]
    first_equal = np.full(len(x), -1)  # the first chunk the pair agrees on reports it
    for index in range(len(layout) - 1, -1, -1):
        s, w = layout[index]
        first_equal[((x >> np.uint64(s)) & np.uint64((1 << w) - 1)) == 0] = index
    keep = first_equal == chunk_index
    return list(zip(i[keep].tolist(), j[keep].tolist()))


def _near_losers(element, d: int):
    """Within one bucket: for each pair within d, the member with the larger order key loses.

    Yields (loser uid, (winner uid, loser order key)). Pairs come out in no particular order;
    `_loser_entry` reduces them order-independently.
    """
    (_, chunk, _), batches = element
    packs = [packed for _, packed in batches]
    uids = [uid for packed in packs for uid in split_uids(packed[2])]
    if len(uids) < 2:
        return
    hashes = np.concatenate([np.frombuffer(p[1], dtype=np.uint64) for p in packs])
    pairs = bucket_pairs(hashes, chunk, d)
    if not pairs:
        return
    keys = np.concatenate([np.frombuffer(p[0], dtype=np.uint64) for p in packs]).tolist()
    for i, j in pairs:
        if (keys[j], uids[j]) < (keys[i], uids[i]):
            i, j = j, i
        yield uids[j], (uids[i], keys[j])


def _loser_entry(element):
    """(loser uid, [(winner, order key)]) -> (its slot bucket, (uid, smallest winner uid))."""
    uid, hits = element
    hits = list(hits)
    return (uid.split("/", 1)[0], slots.rank_bucket(hits[0][1])), (uid, min(w for w, _ in hits))


class NearDuplicateLosers(beam.PTransform):
    """Near-dup bucket batches (ExactDedupFn.NEAR_KEYS) -> (slot bucket, (uid, winner)) per loser.

    Buckets are the d+1 exact chunks of the pHash (pigeonhole), grouped by GroupByKey; a record
    loses if any near neighbour of the same source has a smaller salted order key. The losers
    (few) are grouped once by uid so each comes out once; they are removed where slots are
    assigned, so the full list of metas never needs a join by uid.
    """

    def __init__(self, d: int):
        super().__init__()
        self._d = d

    def expand(self, bucket_batches):
        d = self._d
        return (bucket_batches
                | "GroupBuckets" >> beam.GroupByKey()
                | "PairsInBucket" >> beam.FlatMap(_near_losers, d)
                | "GroupLosers" >> beam.GroupByKey()
                | "LoserEntry" >> beam.Map(_loser_entry))
