"""Materialize a weighted, deduplicated, decontaminated image-text pretraining mixture.

Reads the sources of a mixture config (YAML/JSON, or `registry:NAME`), validates and filters the
records, removes evaluation-image contamination, exact duplicates and near-duplicate images,
assigns each source exactly its share of N slots (Megatron-style interleaving, every prefix within
about one record of its target), and writes `num_shards` shards with contiguous slot ranges, plus
`stats.json`, `rejected/` (every dropped record with its reason), `manifest.json` and `COMPLETED`.

Local:
  tessera mixture --config demo_mix.yaml --output out/demo_mix
  python -m tessera.pipelines.mixture --config mix.yaml --output out/mix \
      --direct_num_workers 2 --direct_running_mode multi_processing

Dataflow (CPU workers; no accelerator needed):
  tessera mixture --config gs://BUCKET/mixtures/demo_mix.yaml --output gs://BUCKET/mixtures/demo_mix \
      --runner DataflowRunner --project PROJECT --region us-central1 \
      --temp_location gs://BUCKET/tmp --setup_file ./setup.py --max_num_workers 32
"""
from __future__ import annotations

import json
import logging
import sys
import uuid

import apache_beam as beam

from tessera import fileio
from tessera.config import ConfigError
from tessera.pipelines.common import input_error, parse_config, run_workload, setup_logging
from tessera.schemas.mixture import MixtureConfig, MixtureConfigError
from tessera.schemas.records import DeadLetter
from tessera.transforms.mixture import stages as st
from tessera.transforms.mixture.config import MixtureJobConfig
from tessera.transforms.mixture.dedup_stages import ExactDedupFn, NearDuplicateLosers
from tessera.transforms.mixture.read_stages import ReadSource
from tessera.transforms.mixture.prepare_stages import REJECTED, PrepareFn
from tessera.transforms.mixture.registry import load_mixture
from tessera.transforms.mixture.write_stages import WriteEmptyShardsFn, WriteShardFn
from tessera.fileio import join, match_paths
from tessera.transforms.core.output_dir import OutputContract
from tessera.transforms.core.outputs import FinalizeOutput, WriteDeadLetters

WORKLOAD = "mixture"
PROG = "tessera mixture"
OUTPUT = OutputContract(WORKLOAD, owned=("mixture-*", st.FRAGMENTS + "*/", "stats.json", "rejected/"))


def check_globs(mixture: MixtureConfig) -> list[str]:
    """Fail before launching if a source or eval glob matches nothing; returns the eval paths."""
    for s in mixture.sources:
        if not match_paths(s.path):
            raise MixtureConfigError(f"source {s.name!r}: path {s.path!r} matches no files")
    eval_paths = []
    for pattern in mixture.decontaminate.eval:
        found = sorted(m.path for m in match_paths(pattern))
        if not found:
            raise MixtureConfigError(f"decontaminate.eval glob {pattern!r} matches no files")
        eval_paths.extend(found)
    return sorted(set(eval_paths))


def build(pipeline: beam.Pipeline, run: MixtureJobConfig) -> dict:
    """Wire the mixture stages; returns the PCollections of written paths."""
    mix, out = run.mixture, run.output
    eval_paths = check_globs(mix)
    rejected, read_events, records, metas = [], [], [], []
    for s in mix.sources:
        prepared = (pipeline
                    | f"Read[{s.name}]" >> ReadSource(s)
                    | f"Prepare[{s.name}]" >> beam.ParDo(PrepareFn(s, mix.filters, mix.seed, mix.format))
                    .with_outputs(PrepareFn.METAS, REJECTED, PrepareFn.EVENTS, main="records"))
        records.append(prepared.records)
        metas.append(prepared[PrepareFn.METAS])
        rejected.append(prepared[REJECTED])
        read_events.append(prepared[PrepareFn.EVENTS])

    eval_d, side = None, []
    if eval_paths:
        hashed = (pipeline
                  | "EvalPaths" >> beam.Create(eval_paths)
                  | "HashEval" >> beam.Map(st.hash_eval_image))
        eval_hashes = hashed | "EvalOk" >> beam.Filter(lambda x: not isinstance(x, DeadLetter))
        rejected.append(hashed | "EvalBad" >> beam.Filter(lambda x: isinstance(x, DeadLetter)))
        eval_d, side = mix.decontaminate.near_image_hamming, [beam.pvalue.AsList(eval_hashes)]
    skip = frozenset(s.name for s in mix.sources if not s.near_dedup)
    exact = (metas
             | "AllMetas" >> beam.Flatten()
             | "GroupContent" >> beam.GroupByKey()
             | "ExactDedup" >> beam.ParDo(
                 ExactDedupFn(mix.dedup.exact, mix.dedup.near_image_hamming, skip, eval_d), *side)
             .with_outputs(REJECTED, ExactDedupFn.NEAR_KEYS, ExactDedupFn.COUNTS, main="drops"))
    rejected.append(exact[REJECTED])
    verdicts = [exact.drops]
    count_events = [*(r | f"CountRecords[{s.name}]" >> beam.Map(st.records_in_batch)
                      for s, r in zip(mix.sources, records)),
                    exact[ExactDedupFn.COUNTS]]
    if mix.dedup.near_image_hamming is not None:
        losers = exact[ExactDedupFn.NEAR_KEYS] | "NearDedup" >> NearDuplicateLosers(
            mix.dedup.near_image_hamming)
        verdicts.append(losers | "BatchLosers" >> beam.ParDo(st.BatchByKey("near")))
        count_events.append(losers | "UncountLosers" >> beam.Map(lambda e: (e[0], -1)))
    verdicts = verdicts | "AllVerdicts" >> beam.Flatten()

    bucket_counts = (count_events
                     | "AllCounts" >> beam.Flatten()
                     | "CountBuckets" >> beam.CombinePerKey(sum)
                     | "NonEmptyBuckets" >> beam.Filter(lambda kv: kv[1] > 0))
    # Each source's records are grouped on their own and meet the (few) dedup verdicts as a
    # keyed side input: joining them through a Flatten would copy every payload once more on
    # the DirectRunner, which materializes Flattens.
    fragments_dir = join(out, st.FRAGMENTS + uuid.uuid4().hex)
    assign = st.AssignSlotsFn(mix, fragments_dir, run.fragment_buffer_bytes)
    fragments, assign_events = [], []
    for s, source_records in zip(mix.sources, records):
        assigned = (source_records
                    | f"GroupBuckets[{s.name}]" >> beam.GroupByKey()
                    | f"AssignSlots[{s.name}]" >> beam.ParDo(
                        assign, beam.pvalue.AsDict(bucket_counts), beam.pvalue.AsMultiMap(verdicts))
                    .with_outputs(REJECTED, st.AssignSlotsFn.EVENTS, main="fragments"))
        fragments.append(assigned.fragments)
        rejected.append(assigned[REJECTED])
        assign_events.append(assigned[st.AssignSlotsFn.EVENTS])

    writer = WriteShardFn(out, mix.num_shards, mix.format)
    written = (fragments
               | "AllFragments" >> beam.Flatten()
               | "GroupShards" >> beam.GroupByKey()
               | "WriteShards" >> beam.ParDo(writer))
    empty = (pipeline
             | "ShardIds" >> beam.Create(list(range(mix.num_shards)))
             | "WriteEmptyShards" >> beam.ParDo(WriteEmptyShardsFn(writer), beam.pvalue.AsList(written)))
    shard_paths = (pipeline
                   | "AfterShards" >> beam.Create([None])
                   | "RemoveFragments" >> beam.ParDo(st.RemoveFragmentsFn(fragments_dir), beam.pvalue.AsList(
                       [written, empty] | "AllShards" >> beam.Flatten())))

    all_rejected = rejected | "AllRejected" >> beam.Flatten()
    rejected_files = all_rejected | "WriteRejected" >> WriteDeadLetters(out, subdir="rejected", prefix="rejected")
    events = ([*read_events,
               all_rejected | "RejectEvents" >> beam.FlatMap(st.events_for_letter),
               *assign_events]
              | "AllEvents" >> beam.Flatten()
              | "SumEvents" >> beam.CombinePerKey(sum)
              | "EventList" >> beam.combiners.ToList())
    stats_path = events | "WriteStats" >> beam.ParDo(st.WriteStatsFn(mix, out), beam.pvalue.AsDict(bucket_counts))

    outputs = {"shards": shard_paths, "rejected": rejected_files, "stats": stats_path}
    inputs = [s.path for s in mix.sources] + list(mix.decontaminate.eval)
    outputs["manifest"] = outputs | "Finalize" >> FinalizeOutput(
        out, workload=WORKLOAD, config=mix.to_dict(), inputs=inputs, contract=OUTPUT)
    return outputs


def _mixture_flags(parser) -> None:
    parser.add_argument("--config", required=True, help="mixture YAML/JSON path, or registry:NAME")
    parser.add_argument("--module_import", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers mixtures for registry:NAME); "
                             "repeatable")


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        run, options = parse_config(
            PROG, __doc__, MixtureJobConfig, argv, extra_flags=_mixture_flags,
            derive=lambda a: {"mixture": load_mixture(a.config, tuple(a.module_import))})
        check_globs(run.mixture)
    except (ConfigError, MixtureConfigError) as e:
        return input_error(PROG, e)
    status = run_workload(PROG, build, run, options, OUTPUT, manifest_config=run.mixture.to_dict())
    if status:
        return status
    with fileio.open_read(join(run.output, "stats.json")) as f:
        stats = json.load(f)
    logging.info("mixture %s: %s", run.mixture.name, json.dumps(stats["totals"], sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
