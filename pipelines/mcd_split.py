"""`tessera mcd-split`: Maximum-Compound-Divergence splits (Keysers et al. 2020, the CFQ method).

Reads SCAN (generated from its grammar) or a JSONL file whose lines hold `input`, `output` and
either a `derivation` (nested lists of rule names) or precomputed `atoms` and `compounds`; extracts
atoms and weighted compounds in parallel; then greedily picks train and a hold-out that maximize
compound divergence (or hit --target-compound-divergence) with atom divergence under the limit;
the hold-out is cut into dev and test by a keyed shuffle. Unused examples stay unused, as in CFQ.

Outputs in --output: split.json (trainIdxs/devIdxs/testIdxs: indices into the input order),
stats.json, examples.jsonl, divergence_trajectory.png, errors/ (dead letters), manifest.json and
COMPLETED (last).

Local (SCAN: ~70 s of CPU, most of it the greedy split: 2 runs + 2,000 swap steps):
    tessera mcd-split --dataset scan --output out/scan_mcd_seed0 --seed 0
    tessera mcd-split --dataset scan --output out/scan_random --random-baseline
    tessera mcd-split --dataset data.jsonl --output out/my_mcd --train 0.4 --dev 0.05 --test 0.05

Dataflow (extraction runs on the workers; the greedy split runs in one task):
    tessera mcd-split --dataset gs://BUCKET/cfq.jsonl --output gs://BUCKET/cfq_mcd \
        --runner DataflowRunner --project P --region R --temp_location gs://BUCKET/tmp \
        --setup_file ./setup.py
"""
from __future__ import annotations

import sys

import apache_beam as beam

from tessera.config import ConfigError, to_dict
from tessera.pipelines import common
from tessera.transforms.core import outputs
from tessera.transforms.core.output_dir import OutputContract
from tessera.transforms.core.progress import LogProgress
from tessera.transforms.mcd import split as mcd_split
from tessera.transforms.mcd import stages as mcd_stages
from tessera.transforms.mcd.config import McdSplitConfig

PROG = "tessera mcd-split"
OUTPUT = OutputContract("mcd-split", owned=(*mcd_split.OUTPUT_FILES, "errors/"))


def build(pipeline: beam.Pipeline, config: McdSplitConfig):
    """Read -> ExtractAtomsAndCompounds -> gather -> greedy split -> write -> manifest."""
    examples, dead = (pipeline
                      | "Read" >> mcd_stages.ReadIndexed(config.dataset)
                      | "Progress" >> LogProgress("mcd_split", "read", every=20000)
                      | "Extract" >> mcd_stages.ExtractAtomsAndCompounds(config.max_compound_size))
    written = (examples
               | "Gather" >> beam.combiners.ToList()
               | "Split" >> beam.Map(mcd_split.make_split, config)
               | "Write" >> beam.FlatMap(mcd_split.write_split_outputs, config.output))
    dead_files = dead | "WriteDeadLetters" >> outputs.WriteDeadLetters(config.output)
    inputs = [] if config.dataset == "scan" else [config.dataset]
    return {"examples": examples, "files": written, "dead_letters": dead,
            "dead_letter_files": dead_files} | "Finalize" >> outputs.FinalizeOutput(
        config.output, workload="mcd-split", config=to_dict(config), inputs=inputs, contract=OUTPUT)


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, McdSplitConfig, argv)
        if config.dataset != "scan":
            common.require_match("--dataset", config.dataset)
    except ConfigError as err:
        return common.input_error(PROG, err)
    return common.run_workload(PROG, build, config, options, OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
