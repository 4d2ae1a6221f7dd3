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

from tessera.pipelines import common
from tessera.transforms.mcd import compounds
from tessera.transforms.mcd import greedy as mcd_greedy
from tessera.transforms.mcd import split as mcd_split
from tessera.transforms.mcd import stages as mcd_stages
from tessera.transforms.core import outputs
from tessera.transforms.core.progress import LogProgress


def build(pipeline: beam.Pipeline, config: dict):
    """Read -> ExtractAtomsAndCompounds -> gather -> greedy split -> write -> manifest."""
    examples, dead = (pipeline
                      | "Read" >> mcd_stages.ReadIndexed(config["dataset"])
                      | "Progress" >> LogProgress("mcd_split", "read", every=20000)
                      | "Extract" >> mcd_stages.ExtractAtomsAndCompounds(config["max_compound_size"]))
    written = (examples
               | "Gather" >> beam.combiners.ToList()
               | "Split" >> beam.Map(mcd_split.make_split, config)
               | "Write" >> beam.FlatMap(mcd_split.write_split_outputs, config["output"]))
    dead_files = dead | "WriteDeadLetters" >> outputs.WriteDeadLetters(config["output"])
    inputs = [] if config["dataset"] == "scan" else [config["dataset"]]
    return {"examples": examples, "files": written, "dead_letters": dead,
            "dead_letter_files": dead_files} | "Finalize" >> outputs.FinalizeOutput(
        config["output"], workload="mcd-split", config=config, inputs=inputs)


def default_compound_size(dataset: str) -> int:
    return compounds.SCAN_MAX_SIZE if dataset == "scan" else compounds.DEFAULT_MAX_SIZE


def parse_args(argv):
    parser = common.make_parser("tessera mcd-split", __doc__)
    parser.add_argument("--dataset", required=True, help="'scan' or a JSONL file (local or gs://)")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--train", type=float, default=0.4, help="train fraction of all examples")
    parser.add_argument("--dev", type=float, default=0.05, help="dev fraction")
    parser.add_argument("--test", type=float, default=0.05, help="test fraction")
    parser.add_argument("--max-atom-divergence", type=float, default=0.02)
    parser.add_argument("--target-compound-divergence", type=float, default=None,
                        help="aim at this D_C instead of maximizing it (divergence-curve splits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-baseline", action="store_true",
                        help="a keyed-random split of the same sizes instead of MCD")
    parser.add_argument("--max-compound-size", type=int, default=None,
                        help="largest compound (nodes of a rooted sub-tree) to extract; default "
                             f"{compounds.SCAN_MAX_SIZE} for scan, {compounds.DEFAULT_MAX_SIZE} for files")
    parser.add_argument("--candidates-per-step", type=int, default=mcd_greedy.GreedyConfig.candidates_per_step,
                        help="keyed-random candidates scored per greedy step")
    parser.add_argument("--restarts", type=int, default=mcd_greedy.GreedyConfig.restarts,
                        help="independent greedy runs (keyed by seed and run); the best is kept")
    parser.add_argument("--swap-steps", type=int, default=mcd_greedy.GreedyConfig.swap_steps,
                        help="swap-search steps after the greedy (0: none)")
    args, options = common.parse_pipeline_args(parser, argv)
    mcd_split.check_fractions(args.train, args.dev, args.test)
    if args.max_compound_size is None:
        args.max_compound_size = default_compound_size(args.dataset)
    if args.target_compound_divergence is not None and not 0.0 <= args.target_compound_divergence <= 1.0:
        raise ValueError("--target-compound-divergence must be in [0, 1]")
    if args.restarts < 1 or args.swap_steps < 0:
        raise ValueError("--restarts must be >= 1 and --swap-steps >= 0")
    if args.max_compound_size < 2:
        raise ValueError("--max-compound-size must be >= 2 (compounds have at least two rules)")
    config = {k: getattr(args, k) for k in (
        "dataset", "output", "train", "dev", "test", "max_atom_divergence", "target_compound_divergence",
        "seed", "random_baseline", "max_compound_size", "candidates_per_step", "restarts",
        "swap_steps")}
    return config, options


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = parse_args(argv)
    except ValueError as err:
        return common.input_error("tessera mcd-split", err)
    common.run_pipeline(build, config, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
