"""Exact slot assignment for a mixture: who goes where in the output, decided without sampling.

seqio and TFDS sample sources at read time, so proportions hold only in expectation. Here the
output has N slots; source s gets exactly T_s of them (largest remainder rounding of w_s * N, so
|T_s - w_s * N| < 1), and slots are interleaved the way Megatron's `build_blending_indices` does
it (each slot goes to the source furthest behind its target), which keeps every prefix of the
output within about one record of its target. The arithmetic is integer-only, so every worker
computes the same plan.

Which record fills a source's k-th slot: records of a source are ranked by a salted hash of their
key (a deterministic shuffle, TFDS-style); occurrence k takes the record of rank k mod n_s. A
source smaller than its share is therefore repeated in whole passes, each pass spread over the
whole output, and no record is used more than ceil(T_s / n_s) times.
"""
from __future__ import annotations

import hashlib
import math
from typing import Mapping, Sequence

import numpy as np

RANK_BUCKET_BITS = 8  # ranks are computed per (source, top bits of the salted hash) bucket


def salted_hash(seed: int, *parts: str) -> int:
    """Stable 64-bit hash of `parts` under `seed` (blake2b; independent of PYTHONHASHSEED)."""
    h = hashlib.blake2b(digest_size=8, person=b"tessera-mix")
    h.update(str(seed).encode())
    for p in parts:
        h.update(b"\x1f" + p.encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def rank_bucket(order_key: int, bits: int = RANK_BUCKET_BITS) -> int:
    return order_key >> (64 - bits)


def resolve_weights(weights: Mapping[str, float | None], sizes: Mapping[str, int],
                    temperature: float = 1.0) -> dict[str, float]:
    """Normalized weights: the given ones rescaled to sum 1, or size^(1/T) when none are given.

    Raises:
        ValueError: no source has a positive weight (or, temperature mode, no records at all).
    """
    names = sorted(weights)
    if all(weights[n] is None for n in names):
        raw = {n: float(sizes.get(n, 0)) ** (1.0 / temperature) if sizes.get(n, 0) else 0.0
               for n in names}
    else:
        raw = {n: float(weights[n]) for n in names}
    total = math.fsum(raw.values())
    if total <= 0:
        raise ValueError(f"no source has a positive weight (weights {raw}, sizes {dict(sizes)})")
    return {n: raw[n] / total for n in names}


def default_total(sizes: Mapping[str, int]) -> int:
    """N when the config gives none: every surviving record once in total, mixed by weight."""
    return int(sum(sizes.values()))


def source_totals(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """Exact share per source: floor(w * N) plus one for the largest remainders (ties by name)."""
    names = sorted(weights)
    ideal = {n: weights[n] * total for n in names}
    counts = {n: int(math.floor(ideal[n])) for n in names}
    left = total - sum(counts.values())
    by_remainder = sorted(names, key=lambda n: (-(ideal[n] - counts[n]), n))
    for n in by_remainder[:left]:
        counts[n] += 1
    return counts


COMPILED_BLEND_ABOVE = 2_000_000  # slots: below, the loop costs less than starting XLA (1-4 s)


def blend(totals: Sequence[int], compiled: bool | None = None) -> np.ndarray:
    """Source index of every slot, Megatron-style, in exact integer arithmetic.

    Slot j goes to the source with the largest deficit T_s * (j + 1) / N - c_s (ties: lowest
    index), so the counts end exactly at T_s (a source with all its slots has a deficit <= 0,
    while the deficits always sum to N > 0). A Python loop up to `COMPILED_BLEND_ABOVE` slots
    (about 0.5 s per million); beyond, the same loop as an XLA scan on the CPU (10 million slots
    in about 0.3 s once XLA is up), identical output (tested). `compiled` forces one or the other.
    """
    n_total = int(sum(totals))
    if compiled is None:
        compiled = COMPILED_BLEND_ABOVE < n_total < 2 ** 31  # int64 products stay below 2^62
    return _blend_scan(totals) if compiled else _blend_loop(totals)


def _blend_loop(totals: Sequence[int]) -> np.ndarray:
    n_total = int(sum(totals))
    out = np.empty(n_total, dtype=np.int32)
    counts = [0] * len(totals)
    active = [s for s, t in enumerate(totals) if t > 0]
    for j in range(n_total):
        best, best_deficit = -1, None
        for s in active:
            deficit = totals[s] * (j + 1) - counts[s] * n_total
            if best_deficit is None or deficit > best_deficit:
                best, best_deficit = s, deficit
        out[j] = best
        counts[best] += 1
        if counts[best] == totals[best]:
            active.remove(best)
    return out


def _blend_scan(totals: Sequence[int]) -> np.ndarray:
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    n_total = int(sum(totals))
    if n_total == 0:
        return np.empty(0, dtype=np.int32)
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        t = jnp.asarray([int(x) for x in totals], dtype=jnp.int64)

        def step(counts, j):
            best = jnp.argmax(t * (j + 1) - counts * n_total)  # first maximum: the lowest index
            return counts.at[best].add(1), best.astype(jnp.int32)

        _, seq = jax.lax.scan(step, jnp.zeros_like(t), jnp.arange(n_total, dtype=jnp.int64))
        return np.asarray(seq)


def slot_positions(totals: Sequence[int], sequence: np.ndarray | None = None) -> list[np.ndarray]:
    """For each source s, the slot index of its k-th occurrence (k = 0 .. T_s - 1)."""
    seq = blend(totals) if sequence is None else sequence
    small = np.uint8 if len(totals) <= 256 else np.uint16 if len(totals) <= 65536 else seq.dtype
    order = np.argsort(seq.astype(small, copy=False), kind="stable")  # a radix sort for 8/16 bits
    if len(seq) < 2 ** 31:
        order = order.astype(np.int32)  # half the memory of a big plan
    bounds = np.cumsum([0, *totals])
    return [order[bounds[s]:bounds[s + 1]] for s in range(len(totals))]


def occurrences(rank: int, size: int, share: int) -> range:
    """Occurrence indices k (k mod size == rank) that the record of this rank fills."""
    if size <= 0 or rank >= share:
        return range(0)
    return range(rank, share, size)


def max_uses(size: int, share: int) -> int:
    return math.ceil(share / size) if size else 0


def shard_of_slot(slot: int, total: int, num_shards: int) -> int:
    """Shards hold contiguous slot ranges, so reading shards in order replays the blend."""
    return slot * num_shards // total


def shard_ranges(total: int, num_shards: int) -> list[tuple[int, int]]:
    return [(-(-i * total // num_shards), -(-(i + 1) * total // num_shards)) for i in range(num_shards)]


def prefix_deviation(sources: Sequence[int], totals: Sequence[int]) -> float:
    """max over prefixes L and sources s of |count_s(L) - T_s * L / N|, for tests and stats."""
    seq = np.asarray(sources)
    n_total = len(seq)
    if n_total == 0:
        return 0.0
    lengths = np.arange(1, n_total + 1)
    worst = 0.0
    for s, t in enumerate(totals):
        counts = np.cumsum(seq == s)
        worst = max(worst, float(np.abs(counts - t * lengths / n_total).max()))
    return worst


def bucket_offsets(bucket_counts: Mapping[int, int]) -> dict[int, int]:
    """First rank of each hash bucket: ranks are the buckets' prefix sums plus the local order."""
    offsets, running = {}, 0
    for b in sorted(bucket_counts):
        offsets[b] = running
        running += bucket_counts[b]
    return offsets
