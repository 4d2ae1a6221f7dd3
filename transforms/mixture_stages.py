"""The Beam stages of `tessera mixture`: decontaminate, deduplicate, assign slots, count.

Only small metadata tuples go through the dedup and ranking shuffles; the full records (with their
image bytes) are shuffled twice: once to meet their slot decisions, once into shards. Every
decision is a function of salted hashes of record keys, so the output does not depend on how the
runner splits the work.

Element shapes:
  record:   (uid, MixtureRecord, sha, phash)                 after ValidateFn
  meta:     (source, uid, sha, phash, order_key)             small, for dedup and ranking
  decision: (uid, [(shard, slot), ...])                      kept records and where they go
"""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.mixture import MixtureConfig
from schemas.records import DeadLetter
from transforms import mixture_slots as slots
from transforms.image_hash import decode_image, phash_image, to_hex
from transforms.mixture_io import NAMESPACE, letter, source_of
from transforms.near_dup_index import MultiIndexHash, bucket_keys, pairs_in_bucket
from transforms.outputs import atomic_write_json, join
from transforms.progress import count

REJECTED = "rejected"


# ---------------------------------------------------------------- eval images

def hash_eval_image(path: str) -> tuple[int, str] | DeadLetter:
    try:
        with FileSystems.open(path) as f:
            return phash_image(decode_image(f.read())), path
    except (OSError, ValueError) as e:
        count(NAMESPACE, "eval_unreadable")
        return DeadLetter(key=f"eval/{path}", stage="eval", reason="undecodable_eval_image", detail=str(e))


class DecontaminateFn(beam.DoFn):
    """Drops records whose image is within d of any eval image (MultiIndexHash side input)."""

    def __init__(self, d: int):
        self._d = d
        self._cache_key, self._index, self._paths = None, None, None

    def process(self, element, eval_hashes):
        key = (len(eval_hashes), id(eval_hashes))
        if key != self._cache_key:
            ordered = sorted(eval_hashes)
            self._index = MultiIndexHash([h for h, _ in ordered], self._d)
            self._paths = [p for _, p in ordered]
            self._cache_key = key
        uid, record, _, phash = element
        hit = self._index.nearest(phash) if len(self._index) else None
        if hit is None:
            yield element
            return
        idx, dist = hit
        count(NAMESPACE, "contaminated")
        yield beam.pvalue.TaggedOutput(REJECTED, letter(
            record.source, record.id, "decontaminate", "contaminated",
            f"pHash {to_hex(phash)} within {dist} bits of eval image {self._paths[idx]}"))


# ---------------------------------------------------------------- deduplication

def _uid_parts(uid: str) -> tuple[str, str]:
    source, rest = uid.split("/", 1)
    return source, rest.rsplit("/", 1)[0]


class ExactDedupFn(beam.DoFn):
    """((source, sha), [meta]) -> the meta with the smallest order key; the rest are rejected.

    With `exact` off, only records that are identical including their id are collapsed (they
    cannot be told apart downstream).
    """

    def __init__(self, exact: bool):
        self._exact = exact

    def process(self, element):
        _, metas = element
        ordered = sorted(metas, key=lambda m: (m[4], m[1]))
        seen = set()
        for i, meta in enumerate(ordered):
            uid = meta[1]
            if (self._exact and i == 0) or (not self._exact and uid not in seen):
                seen.add(uid)
                yield meta
                continue
            count(NAMESPACE, "duplicate")
            source, rid = _uid_parts(uid)
            yield beam.pvalue.TaggedOutput(REJECTED, letter(
                source, rid, "dedup_exact", "duplicate", f"same content as {ordered[0][1]}"))


def _near_keys(meta, d: int):
    source, uid, _, phash, order_key = meta
    for chunk, value in bucket_keys(phash, d):
        yield (source, chunk, value), (order_key, uid, phash)


def _near_losers(element, d: int):
    """Within one bucket: for each pair within d, the member with the larger order key loses."""
    (_, chunk, _), members = element
    members = sorted(members)
    for i, j in pairs_in_bucket([m[2] for m in members], chunk, d):
        yield members[j][1], members[i][1]


def _mark_near_duplicates(element):
    uid, groups = element
    metas, winners = list(groups["meta"]), sorted(groups["winner"])
    for meta in metas:
        if not winners:
            yield meta
            continue
        count(NAMESPACE, "near_duplicate")
        source, rid = _uid_parts(uid)
        yield beam.pvalue.TaggedOutput(REJECTED, letter(
            source, rid, "dedup_near", "near_duplicate", f"image near {winners[0]}"))


class RemoveNearDuplicates(beam.PTransform):
    """meta -> meta, with images within d of a record that sorts earlier (same source) rejected.

    Buckets are the d+1 exact chunks of the pHash (pigeonhole), grouped by GroupByKey; a record
    loses if any near neighbour has a smaller salted order key. Returns (kept, rejected).
    """

    def __init__(self, d: int, skip_sources: frozenset):
        super().__init__()
        self._d, self._skip = d, skip_sources

    def expand(self, metas):
        d, skip = self._d, self._skip
        keyed = metas | "KeyByUid" >> beam.Map(lambda m: (m[1], m))
        winners = (metas
                   | "Eligible" >> beam.Filter(lambda m: m[0] not in skip)
                   | "BucketKeys" >> beam.FlatMap(_near_keys, d)
                   | "GroupBuckets" >> beam.GroupByKey()
                   | "PairsInBucket" >> beam.FlatMap(_near_losers, d))
        result = ({"meta": keyed, "winner": winners}
                  | "JoinLosers" >> beam.CoGroupByKey()
                  | "MarkLosers" >> beam.FlatMap(_mark_near_duplicates).with_outputs(REJECTED, main="kept"))
        return result.kept, result[REJECTED]


# ---------------------------------------------------------------- slots

class SlotPlan:
    """Sizes -> weights, shares T_s and the slot of each occurrence; cached per worker."""

    def __init__(self, config: MixtureConfig, sizes: dict[str, int]):
        names = sorted(s.name for s in config.sources)
        self.names = names
        self.sizes = {n: int(sizes.get(n, 0)) for n in names}
        self.weights = slots.resolve_weights({s.name: s.weight for s in config.sources}, self.sizes,
                                             config.temperature)
        self.total = config.total_examples or slots.default_total(self.sizes)
        if self.total <= 0:
            raise ValueError(f"mixture {config.name!r}: no records survived filtering and dedup")
        self.shares = slots.source_totals(self.weights, self.total)
        empty = [n for n in names if self.shares[n] > 0 and self.sizes[n] == 0]
        if empty:
            raise ValueError(
                f"mixture {config.name!r}: source(s) {empty} have a positive weight but no records "
                f"left after validation, filters, decontamination and dedup (sizes {self.sizes})")
        self.positions = dict(zip(names, slots.slot_positions([self.shares[n] for n in names])))

    def summary(self) -> dict:
        return {n: {"weight": self.weights[n], "share": self.shares[n], "kept": self.sizes[n],
                    "max_uses": slots.max_uses(self.sizes[n], self.shares[n])} for n in self.names}


class _PlanCache:
    def __init__(self, config: MixtureConfig):
        self._config, self._key, self._plan = config, None, None

    def plan(self, bucket_counts: dict) -> SlotPlan:
        key = tuple(sorted(bucket_counts.items()))
        if key != self._key:
            sizes: dict[str, int] = {}
            for (source, _), n in bucket_counts.items():
                sizes[source] = sizes.get(source, 0) + n
            self._plan, self._key = SlotPlan(self._config, sizes), key
        return self._plan


class AssignSlotsFn(beam.DoFn):
    """((source, bucket), [(order_key, uid)]) -> (uid, [(shard, slot)]) or a 'not_selected' rejection."""

    def __init__(self, config: MixtureConfig):
        self._cache = _PlanCache(config)
        self._num_shards = config.num_shards

    def process(self, element, bucket_counts):
        (source, bucket), members = element
        plan = self._cache.plan(bucket_counts)
        offsets = slots.bucket_offsets({b: n for (s, b), n in bucket_counts.items() if s == source})
        size, share = plan.sizes[source], plan.shares[source]
        positions = plan.positions[source]
        for i, (_, uid) in enumerate(sorted(members)):
            rank = offsets[bucket] + i
            ks = slots.occurrences(rank, size, share)
            if not ks:
                count(NAMESPACE, "not_selected")
                src, rid = _uid_parts(uid)
                yield beam.pvalue.TaggedOutput(REJECTED, letter(
                    src, rid, "select", "not_selected", f"rank {rank} >= share {share} of {size}"))
                continue
            yield uid, [(slots.shard_of_slot(int(positions[k]), plan.total, self._num_shards),
                         int(positions[k])) for k in ks]


def to_shards(element):
    """CoGroupByKey(uid) of records and slot lists -> (shard, (slot, record)) per occurrence."""
    _, groups = element
    records, decisions = list(groups["record"]), list(groups["slots"])
    if not decisions:
        return
    record = records[0]
    for shard, slot in decisions[0]:
        yield shard, (slot, record)


# ---------------------------------------------------------------- stats

def events_for_letter(dl: DeadLetter):
    yield (source_of(dl.key), f"dropped:{dl.reason}"), 1


def events_for_decision(element):
    uid, slot_list = element
    source = uid.split("/", 1)[0]
    yield (source, "written_unique"), 1
    yield (source, "written"), len(slot_list)
    if len(slot_list) > 1:
        yield (source, "repeated"), len(slot_list) - 1


class WriteStatsFn(beam.DoFn):
    """All (source, field) counts -> stats.json (per source, plus totals and the balance check)."""

    def __init__(self, config: MixtureConfig, output_dir: str):
        self._config, self._output_dir = config, output_dir
        self._cache = _PlanCache(config)

    def process(self, counts, bucket_counts):
        plan = self._cache.plan(bucket_counts)
        per_source = {}
        for name in plan.names:
            fields = {f: n for (s, f), n in counts if s == name}
            dropped = {f.split(":", 1)[1]: n for f, n in sorted(fields.items()) if f.startswith("dropped:")}
            entry = {
                "read": fields.get("read", 0), "kept": plan.sizes[name],
                "duplicates": dropped.get("duplicate", 0), "near_duplicates": dropped.get("near_duplicate", 0),
                "contaminated": dropped.get("contaminated", 0), "not_selected": dropped.get("not_selected", 0),
                "dropped": dropped, "rejected": sum(dropped.values()),
                "repeated": fields.get("repeated", 0), "written": fields.get("written", 0),
                "written_unique": fields.get("written_unique", 0), **plan.summary()[name],
            }
            entry["balanced"] = entry["read"] == entry["written_unique"] + entry["rejected"]
            per_source[name] = entry
        totals = {k: sum(e[k] for e in per_source.values())
                  for k in ("read", "kept", "rejected", "written", "written_unique", "repeated")}
        shares = [plan.shares[n] for n in plan.names]
        stats = {"mixture": self._config.name, "total_examples": plan.total,
                 "num_shards": self._config.num_shards, "sources": per_source, "totals": totals,
                 "balanced": all(e["balanced"] for e in per_source.values()),
                 "max_prefix_deviation": slots.prefix_deviation(slots.blend(shares), shares)
                 if plan.total <= 2_000_000 else None}
        path = join(self._output_dir, "stats.json")
        atomic_write_json(path, stats)
        count(NAMESPACE, "stats_written")
        yield path


def bucket_key(meta):
    source, _, _, _, order_key = meta
    return source, slots.rank_bucket(order_key)

