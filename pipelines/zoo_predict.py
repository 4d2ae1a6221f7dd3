"""`tessera zoo-predict`: predict a CNN's test accuracy from statistics of its weights.

Reads a zoo in the Small CNN Zoo layout (weights.npy, metrics.csv.gz, layout.csv), takes each
network's final checkpoint, computes the paper's 56 features (per layer, bias and kernel: quantiles
0/25/50/75/100, std, mean) in parallel over row chunks, then trains gradient-boosted trees and a
linear baseline on one keyed half of the networks and scores them on the other: R², Kendall tau,
MAE. Diverged (NaN) networks are excluded and counted.

Outputs in --output: report.json, scatter.png (predicted vs true), predictions.csv,
manifest.json and COMPLETED (last).

Local:
    tessera zoo-predict --zoo out/zoo_mnist5k --output out/zoo_mnist5k_predict

Dataflow (feature extraction on workers, the fit in one task):
    tessera zoo-predict --zoo gs://BUCKET/zoo --output gs://BUCKET/zoo_predict \
        --runner DataflowRunner --project P --region R --temp_location gs://BUCKET/tmp \
        --setup_file ./setup.py
"""
from __future__ import annotations

import sys

import apache_beam as beam

from tessera import fileio
from tessera.pipelines import common
from tessera.transforms.core import outputs
from tessera.transforms.zoo import release as zoo_release
from tessera.transforms.zoo.predict_stages import ComputeFeatures, FitAndReport, final_rows


def build(pipeline: beam.Pipeline, config: dict):
    """Final-checkpoint row chunks -> Reshuffle -> features -> gather -> fit, score, write."""
    zoo_release.check_zoo(config["zoo"])  # corrupt or missing zoo: clear error before anything runs
    chunks = final_rows(config["zoo"], config["chunk"])
    features, dead = (pipeline
                      | "RowChunks" >> beam.Create(chunks)
                      | "Spread" >> beam.Reshuffle()
                      | "Features" >> ComputeFeatures(config["zoo"]))
    written = features | "FitAndReport" >> FitAndReport(config)
    dead_files = dead | "WriteDeadLetters" >> outputs.WriteDeadLetters(config["output"])
    return {"networks": features, "files": written, "dead_letters": dead,
            "dead_letter_files": dead_files} | "Finalize" >> outputs.FinalizeOutput(
        config["output"], workload="zoo-predict", config=config,
        inputs=[fileio.join(config["zoo"], name) for name in zoo_release.REQUIRED_FILES])


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser("tessera zoo-predict", __doc__)
    parser.add_argument("--zoo", required=True, help="a cnn-zoo output directory")
    parser.add_argument("--output", required=True)
    parser.add_argument("--chunk", type=int, default=500, help="networks per feature task")
    parser.add_argument("--seed", type=int, default=0, help="GBM random_state")
    args, options = common.parse_pipeline_args(parser, argv)
    common.setup_logging()
    config = {"zoo": args.zoo, "output": args.output, "chunk": args.chunk, "seed": args.seed}
    try:
        zoo_release.check_zoo(args.zoo)
        zoo_release.open_weights(args.zoo)
        zoo_release.read_metrics(args.zoo)
    except zoo_release.ZooFormatError as err:
        return common.input_error("tessera zoo-predict", err)
    common.run_pipeline(build, config, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
