"""The Beam stages of `tessera mixture` after dedup: assign slots, count, write stats.

The full records (with their image bytes) are shuffled once, into their (source, rank bucket),
where they meet the dedup verdicts and get their slots. From there each shard's records go to
fragment files (one per shard per flushed buffer) and only the fragments' paths are grouped by
shard; the shard writer merges its fragments by slot. A second shuffle of the payloads would
move every image once more through the runner (and, on Dataflow, through the billed shuffle).
Shuffled values travel in per-bundle batches (`KeyedBatches`, `BatchByKey`), as the runner's
cost is per element. Every decision is a function of salted hashes of record keys and every
consumer sorts its input, so the output does not depend on how the runner splits or batches
the work.

Element shapes:
  record:   (order_key, uid, payload)             out of PrepareFn, packed per slot bucket
            (`mixture_pack`); the payload is the framed tf.train.Example (or the packed record
            fields for Parquet)
  meta:     (source, uid, sha, phash, order_key)  small, for decontamination and dedup
  fragment: (shard, path)                         out of AssignSlotsFn; the file holds packed
            (slot, payload) columns
"""
from __future__ import annotations

import uuid

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from tessera import fileio
from tessera.schemas.mixture import MixtureConfig
from tessera.schemas.records import DeadLetter
from tessera.transforms.mixture import slots
from tessera.transforms.mixture.phash import phash_bytes
from tessera.transforms.mixture.dedup_stages import _uid_parts
from tessera.transforms.mixture.read_stages import CORRUPT_FILE
from tessera.transforms.mixture.records import NAMESPACE, letter, source_of
from tessera.transforms.mixture.pack import pack_parts, packed_len
from tessera.transforms.mixture.prepare_stages import REJECTED, KeyedBatches, unpack_records
from tessera.fileio import atomic_write_json, join, remove_tree
from tessera.transforms.core.progress import count


PREFIX_CHECK_MAX = 2_000_000  # slots: stats.json reports the worst prefix deviation up to here
FRAGMENTS = "_fragments-"  # + a run id, under the output directory; removed once every shard is written


# ---------------------------------------------------------------- eval images

def hash_eval_image(path: str) -> tuple[int, str] | DeadLetter:
    try:
        with fileio.open_read(path) as f:
            return phash_bytes(f.read()), path
    except (OSError, ValueError) as e:
        count(NAMESPACE, "eval_unreadable")
        return DeadLetter(key=f"eval/{path}", stage="eval", reason="undecodable_eval_image", detail=str(e))


# ---------------------------------------------------------------- batching

class BatchByKey(beam.DoFn):
    """element -> (key, (tag, [values])), one list per key per bundle (or per `max_items`).

    `pairs(element, *args)` gives the element's (key, value) pairs (default: the element is one
    pair); doing that here rather than in a Map before saves one call per pair. The buffering is
    `KeyedBatches`, which the first pass (`PrepareFn`) uses for its outputs too. Every consumer
    sorts what it gets, so how the values happen to be batched never changes a result.
    """

    def __init__(self, tag: str = "", pairs=None, *args, max_items: int = 50_000):
        self._tag, self._pairs, self._args, self._max = tag, pairs, args, max_items

    def start_bundle(self):
        self._out = KeyedBatches({None: self._tag}, self._max)

    def process(self, element):
        lists = self._out.lists(None)
        pairs = [element] if self._pairs is None else self._pairs(element, *self._args)
        n = 0
        for key, value in pairs:
            lists.setdefault(key, []).append(value)
            n += 1
        if self._out.count(n):
            yield from self._out.drain()

    def finish_bundle(self):
        yield from self._out.drain(windowed=True)


def records_in_batch(element):
    """(key, (tag, packed records)) -> (key, number of records), read from the batch's header."""
    key, (_, packed) = element
    return key, packed_len(packed)


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
        shares = [self.shares[n] for n in names]
        sequence = slots.blend(shares)  # source index of every slot
        self.positions = dict(zip(names, slots.slot_positions(shares, sequence)))
        # kept for the stats' prefix check only while it is small: the positions hold the plan
        self.sequence = sequence if self.total <= PREFIX_CHECK_MAX else None

    def summary(self) -> dict:
        return {n: {"weight": self.weights[n], "share": self.shares[n], "kept": self.sizes[n],
                    "max_uses": slots.max_uses(self.sizes[n], self.shares[n])} for n in self.names}


_PLANS: dict = {}  # shared by every slot-assigning DoFn in a worker process: a plan costs O(N)


def slot_plan(config: MixtureConfig, sizes: dict[str, int]) -> SlotPlan:
    key = (config.name, tuple((s.name, s.weight) for s in config.sources), config.temperature,
           config.total_examples, tuple(sorted(sizes.items())))
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= 4:
            _PLANS.clear()
        plan = _PLANS[key] = SlotPlan(config, sizes)
    return plan


class _PlanCache:
    def __init__(self, config: MixtureConfig):
        self._config, self._key, self._plan = config, None, None
        self._seen, self._offsets = None, {}

    def plan(self, bucket_counts: dict) -> SlotPlan:
        if bucket_counts is self._seen:  # the same side-input object: skip re-keying it
            return self._plan
        key = tuple(sorted(bucket_counts.items()))
        if key != self._key:
            sizes: dict[str, int] = {}
            for (source, _), n in bucket_counts.items():
                sizes[source] = sizes.get(source, 0) + n
            self._plan, self._key, self._offsets = slot_plan(self._config, sizes), key, {}
        self._seen = bucket_counts
        return self._plan

    def offsets(self, bucket_counts: dict, source: str) -> dict[int, int]:
        self.plan(bucket_counts)
        if source not in self._offsets:
            self._offsets[source] = slots.bucket_offsets(
                {b: n for (s, b), n in bucket_counts.items() if s == source})
        return self._offsets[source]


class AssignSlotsFn(beam.DoFn):
    """One (source, rank bucket) with its records and dedup verdicts -> shard fragments.

    Input values are batches tagged "rec" (packed (order_key, uid, payload) of valid records);
    the `verdicts` side input (a multimap by the same key) holds batches tagged "drop" (uids of
    exact duplicates and contaminated records) and "near" ((uid, winner) near-duplicate losers).
    The records that are none of these, in (order_key, uid) order, get ranks offset by the
    counts of earlier buckets. Their occurrences are buffered per shard
    across the bundle and written as fragment files under `fragment_dir` when the buffer passes
    `max_buffered_bytes` and at the end of the bundle; each write yields (shard, path). Also
    yields rejected letters (near_duplicate, not_selected) and ((source, field), n) stats events.
    Fragment names are random, so a retried bundle never overwrites a file a finished one wrote.
    """

    EVENTS = "events"

    def __init__(self, config: MixtureConfig, fragment_dir: str, max_buffered_bytes: int = 64 << 20):
        self._cache = _PlanCache(config)
        self._num_shards = config.num_shards
        self._fragment_dir, self._max_bytes = fragment_dir, max_buffered_bytes

    def start_bundle(self):
        self._placed: dict[int, tuple[list, list]] = {}  # shard -> ([slot], [payload])
        self._bytes = 0

    def finish_bundle(self):
        for element in self._write_fragments():
            yield GlobalWindows.windowed_value(element)

    def _write_fragments(self):
        """Each shard's buffered (slot, payload) pairs -> one fragment file; yields (shard, path)."""
        placed, self._placed, self._bytes = self._placed, {}, 0
        for shard, (slot_list, payloads) in sorted(placed.items()):
            path = join(self._fragment_dir, f"shard-{shard:05d}-{uuid.uuid4().hex}.frag")
            with fileio.create(path) as f:  # referenced only once written: no rename needed
                for part in pack_parts([slot_list], [payloads]):
                    f.write(part)
            count(NAMESPACE, "fragments_written")
            yield shard, path

    def process(self, element, bucket_counts, verdicts):
        (source, bucket), batches = element
        records, keys, dropped, near = {}, {}, set(), {}
        for tag, values in [*batches, *verdicts[(source, bucket)]]:
            if tag == "rec":
                for key, uid, record in zip(*unpack_records(values)):
                    records[uid], keys[uid] = record, key  # a repeated uid is the same record
            elif tag == "drop":
                dropped.update(values)
            else:
                near.update(values)
        kept = sorted((k, uid) for uid, k in keys.items() if uid not in dropped)
        if not kept:
            return
        plan = self._cache.plan(bucket_counts)
        offsets = self._cache.offsets(bucket_counts, source)
        size, share, total = plan.sizes[source], plan.shares[source], plan.total
        positions = plan.positions[source]
        per_shard = self._placed
        rank, unique, written = offsets.get(bucket, 0), 0, 0
        for _, uid in kept:
            if uid in near:
                count(NAMESPACE, "near_duplicate")
                src, rid = _uid_parts(uid)
                yield beam.pvalue.TaggedOutput(REJECTED, letter(
                    src, rid, "dedup_near", "near_duplicate", f"image near {near[uid]}"))
                continue
            ks = slots.occurrences(rank, size, share)
            if not ks:
                count(NAMESPACE, "not_selected")
                src, rid = _uid_parts(uid)
                yield beam.pvalue.TaggedOutput(REJECTED, letter(
                    src, rid, "select", "not_selected", f"rank {rank} >= share {share} of {size}"))
            else:
                record = records[uid]
                self._bytes += len(record) * len(ks)
                for k in ks:
                    slot = int(positions[k])
                    placed = per_shard.setdefault(slots.shard_of_slot(slot, total, self._num_shards), ([], []))
                    placed[0].append(slot)
                    placed[1].append(record)
                unique += 1
                written += len(ks)
            rank += 1
        if self._bytes >= self._max_bytes:
            yield from self._write_fragments()
        for field, n in (("written_unique", unique), ("written", written), ("repeated", written - unique)):
            if n:
                yield beam.pvalue.TaggedOutput(self.EVENTS, ((source, field), n))


class RemoveFragmentsFn(beam.DoFn):
    """Once every shard is written (the side input of their paths), deletes this run's fragment
    directory, then passes the shard paths on, so the completion marker comes after it."""

    def __init__(self, fragment_dir: str):
        self._fragment_dir = fragment_dir

    def process(self, _, shard_paths):
        remove_tree(self._fragment_dir)
        yield from sorted(shard_paths)


# ---------------------------------------------------------------- stats

def events_for_letter(dl: DeadLetter):
    yield (source_of(dl.key), f"dropped:{dl.reason}"), 1


class WriteStatsFn(beam.DoFn):
    """All (source, field) counts -> stats.json (per source, plus totals and the balance check).

    A corrupt source file is one `corrupt_file` letter: it counts once in `read` and `rejected`
    (and in `rejected_files`), next to the records read from it before the corruption.
    """

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
                "rejected_files": dropped.get(CORRUPT_FILE, 0),
                "repeated": fields.get("repeated", 0), "written": fields.get("written", 0),
                "written_unique": fields.get("written_unique", 0), **plan.summary()[name],
            }
            entry["balanced"] = entry["read"] == entry["written_unique"] + entry["rejected"]
            per_source[name] = entry
        totals = {k: sum(e[k] for e in per_source.values())
                  for k in ("read", "kept", "rejected", "rejected_files", "written", "written_unique",
                            "repeated")}
        shares = [plan.shares[n] for n in plan.names]
        stats = {"mixture": self._config.name, "total_examples": plan.total,
                 "num_shards": self._config.num_shards, "sources": per_source, "totals": totals,
                 "balanced": all(e["balanced"] for e in per_source.values()),
                 "max_prefix_deviation": slots.prefix_deviation(plan.sequence, shares)
                 if plan.sequence is not None else None}
        path = join(self._output_dir, "stats.json")
        atomic_write_json(path, stats)
        count(NAMESPACE, "stats_written")
        yield path
