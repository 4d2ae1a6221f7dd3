"""`tessera cnn-zoo`: train a zoo of small CNNs (Unterthiner et al. 2020, the Small CNN Zoo).

Every network gets hyperparameters from a hash of (--seed, its index); networks sharing optimizer,
activation and kernel init are trained together as vectorized populations of up to --population
networks (one jitted, vmapped step). Beam spreads the populations over workers; the training stage
carries the --accelerator resource hint. A final task merges the per-population shards by network
index into the released layout.

Outputs in --output: weights.npy (one row per network and checkpoint, 4,970 float32),
metrics.csv.gz (one row per weights row: network_index, step = epoch, diverged, config.*,
train/test loss and accuracy), layout.csv, index.parquet (one row per network), dataset.json
(the exact train/test indices), errors/ (dead letters), manifest.json and COMPLETED (last).

Local (a tiny zoo; minutes on 2 busy cores):
    tessera cnn-zoo --dataset mnist5k --num-networks 16 --epochs 1 --population 8 --output out/zoo_tiny

Dataflow with GPU workers (one population per GPU task):
    tessera cnn-zoo --dataset mnist5k --num-networks 120000 --epochs 86 --population 256 \
        --output gs://BUCKET/zoo --accelerator 'type:nvidia-l4;count:1;install-nvidia-driver' \
        --runner DataflowRunner --project P --region R --temp_location gs://BUCKET/tmp \
        --setup_file ./setup.py --sdk_container_image IMAGE_WITH_JAX_CUDA
"""
from __future__ import annotations

import sys

import apache_beam as beam

from tessera.config import ConfigError, to_dict
from tessera.pipelines import common
from tessera.transforms.core import outputs
from tessera.transforms.core.output_dir import OutputContract
from tessera.transforms.core.progress import LogProgress
from tessera.transforms.zoo.config import ZooConfig
from tessera.transforms.zoo.datasets import UnknownDatasetError, load_dataset
from tessera.transforms.zoo.sampling import populations
from tessera.training.zoo.stages import AssembleZoo, TrainPopulations

PROG = "tessera cnn-zoo"
OUTPUT = OutputContract("cnn-zoo", owned=(
    "weights.npy", "metrics.csv.gz", "layout.csv", "index.parquet", "dataset.json", "shards/",
    "errors/"), resumable=True)


def build(pipeline: beam.Pipeline, config: ZooConfig):
    """Populations -> Reshuffle -> TrainPopulations (hinted) -> AssembleZoo -> manifest."""
    pops = populations(config.seed, config.num_networks, config.population)
    shards, dead = (pipeline
                    | "Populations" >> beam.Create(pops)
                    | "Spread" >> beam.Reshuffle()
                    | "Progress" >> LogProgress("cnn_zoo", "populations", every=10)
                    | "TrainPopulations" >> TrainPopulations(config))
    files = shards | "AssembleZoo" >> AssembleZoo(config)
    dead_files = dead | "WriteDeadLetters" >> outputs.WriteDeadLetters(config.output)
    return {"populations": shards, "files": files, "dead_letters": dead,
            "dead_letter_files": dead_files} | "Finalize" >> outputs.FinalizeOutput(
        config.output, workload="cnn-zoo", config=to_dict(config), contract=OUTPUT)


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, ZooConfig, argv)
        load_dataset(config.dataset)  # fail fast on the driver with the loader's message
    except (ConfigError, UnknownDatasetError) as err:  # also a TFDS set that cannot be fetched
        return common.input_error(PROG, err)
    return common.run_workload(PROG, build, config, options, OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
