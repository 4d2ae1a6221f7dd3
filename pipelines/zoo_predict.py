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

from tessera.config import ConfigError, to_dict
from tessera.pipelines import common
from tessera.transforms.core import outputs
from tessera.transforms.core.output_dir import OutputContract
from tessera.transforms.zoo import release as zoo_release
from tessera.transforms.zoo.config import ZooPredictConfig
from tessera.transforms.zoo.predict_stages import ComputeFeatures, FitAndReport, final_rows

PROG = "tessera zoo-predict"
OUTPUT = OutputContract("zoo-predict", owned=("report.json", "scatter.png", "predictions.csv", "errors/"))


def build(pipeline: beam.Pipeline, config: ZooPredictConfig):
    """Final-checkpoint row chunks -> Reshuffle -> features -> gather -> fit, score, write."""
    zoo_release.check_zoo(config.zoo)  # corrupt or missing zoo: clear error before anything runs
    chunks = final_rows(config.zoo, config.chunk)
    features, dead = (pipeline
                      | "RowChunks" >> beam.Create(chunks)
                      | "Spread" >> beam.Reshuffle()
                      | "Features" >> ComputeFeatures(config.zoo))
    written = features | "FitAndReport" >> FitAndReport(config)
    dead_files = dead | "WriteDeadLetters" >> outputs.WriteDeadLetters(config.output)
    return {"networks": features, "files": written, "dead_letters": dead,
            "dead_letter_files": dead_files} | "Finalize" >> outputs.FinalizeOutput(
        config.output, workload="zoo-predict", config=to_dict(config),
        inputs=zoo_release.input_files(config.zoo),
        contract=OUTPUT)


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, ZooPredictConfig, argv)
    except ConfigError as err:
        return common.input_error(PROG, err)
    try:
        zoo_release.check_zoo(config.zoo)
        if zoo_release.is_features_folder(config.zoo):
            zoo_release.read_features(config.zoo)
        else:
            zoo_release.open_weights(config.zoo)
        zoo_release.read_metrics(config.zoo)
    except zoo_release.ZooFormatError as err:
        return common.input_error(PROG, err)
    return common.run_workload(PROG, build, config, options, OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
