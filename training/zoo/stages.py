"""Beam stages of the CNN zoo: train one population per element, then assemble the release files.

Elements are small population descriptors (ids and indices), never arrays; each worker loads the
dataset by name in `setup` and writes its population's shard itself.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import apache_beam as beam

from tessera.schemas.records import DeadLetter
from tessera.transforms.zoo import release as zoo_release
from tessera.fileio import atomic_write_json, join
from tessera.transforms.core.progress import count
from tessera.transforms.zoo.datasets import load_dataset
from tessera.transforms.zoo.sampling import Population, checkpoint_epochs, config_columns, sample_network

NAMESPACE = "cnn_zoo"
DEAD = "dead_letters"


def padded_size(n: int, population_size: int) -> int:
    """Smallest power of two >= n (capped at the population size): few distinct jit shapes."""
    return min(population_size, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def identity_rows(configs, epochs, dataset_name: str) -> list[dict]:
    """The columns that say which network, checkpoint and config a metrics row is, network-major."""
    return [{"network_index": config.index, "step": epoch, **config_columns(config), "config.dataset": dataset_name}
            for config in configs for epoch in epochs]


def population_rows(pop: Population, configs, result, dataset_name: str) -> list[dict]:
    """metrics rows of one trained population, network-major, in checkpoint order."""
    rows = identity_rows(configs, result.epochs, dataset_name)
    for k, row in enumerate(rows):
        j, c = divmod(k, len(result.epochs))
        row["diverged"] = bool(result.diverged[j])
        row.update({name: float(result.metrics[name][j, c]) for name in zoo_release.METRIC_NAMES})
    return rows


class TrainPopulationFn(beam.DoFn):
    """Population descriptor -> trained shard descriptor (main output) or a DeadLetter."""

    def __init__(self, config):
        self._config = config

    def setup(self):
        from tessera.training.zoo import population as zoo_population  # jax imported on the worker only
        self._training = zoo_population
        self._dataset = load_dataset(self._config.dataset)

    def process(self, pop: Population):
        cfg = self._config
        configs = [sample_network(cfg.seed, i) for i in pop.indices]
        if cfg.resume:
            done = _resumable_shard(cfg, pop, configs, self._dataset)
            if done is not None:
                count(NAMESPACE, "populations_resumed")
                yield done
                return
        # Pad with copies of the last network so populations reuse a few compiled shapes; the
        # padding is a function of (seed, N, P) only, so results do not depend on the runner.
        width = padded_size(len(configs), cfg.population)
        padded = configs + [configs[-1]] * (width - len(configs))
        try:
            result = self._training.train_population(
                padded, self._dataset, zoo_seed=cfg.seed, epochs=cfg.epochs,
                optimizer=pop.optimizer, activation=pop.activation, w_init=pop.w_init)
        except (ValueError, FloatingPointError, RuntimeError) as err:
            count(NAMESPACE, "populations_failed")
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                pop.name, "train", type(err).__name__, str(err)[:500]))
            return
        n = len(configs)
        result = dataclasses.replace(
            result, indices=result.indices[:n], weights=result.weights[:n], diverged=result.diverged[:n],
            metrics={k: v[:n] for k, v in result.metrics.items()})
        rows = population_rows(pop, configs, result, cfg.dataset)
        weights = result.weights.reshape(-1, result.weights.shape[-1])
        count(NAMESPACE, "networks_trained", n)
        count(NAMESPACE, "networks_diverged", int(result.diverged.sum()))
        logging.info("%s: %d networks (%s/%s/%s), %d diverged", pop.name, n, pop.optimizer,
                     pop.activation, pop.w_init, int(result.diverged.sum()))
        yield zoo_release.write_shard(cfg.output, pop.name, weights, rows)


def _resumable_shard(cfg, pop: Population, configs, dataset) -> dict | None:
    """An earlier run's shard of this population, if it holds exactly what training would write."""
    expected = identity_rows(configs, checkpoint_epochs(cfg.epochs), cfg.dataset)
    return zoo_release.existing_shard(cfg.output, pop.name, expected,
                                 zoo_release.small_cnn.num_params(dataset.images.shape[-1]))


def assemble_zoo(shards: list[dict], config) -> list[str]:
    """The final single task: dataset.json, layout.csv, and the merged weights/metrics/index."""
    dataset = load_dataset(config.dataset)
    out = config.output
    atomic_write_json(join(out, "dataset.json"), dataset.description())
    layout_path = zoo_release.write_layout(out, int(dataset.images.shape[-1]))
    shards = sorted(shards, key=lambda s: s["indices"][0])
    files = zoo_release.assemble(out, shards, num_params=int(zoo_release.small_cnn.num_params(dataset.images.shape[-1])))
    count(NAMESPACE, "rows_written", sum(s["rows"] for s in shards))
    return [join(out, "dataset.json"), layout_path] + files


class TrainPopulations(beam.PTransform):
    """PCollection[Population] -> (shards, dead letters); the accelerator hint sits on this stage."""

    def __init__(self, config):
        super().__init__()
        self._config = config

    def expand(self, pops):
        train = beam.ParDo(TrainPopulationFn(self._config))
        if self._config.accelerator:
            train = train.with_resource_hints(accelerator=self._config.accelerator)
        results = pops | "Train" >> train.with_outputs(DEAD, main="shards")
        return results.shards, results[DEAD]


class AssembleZoo(beam.PTransform):
    """PCollection[shard descriptor] -> written file names, after every shard exists."""

    def __init__(self, config):
        super().__init__()
        self._config = config

    def expand(self, shards):
        return (shards
                | "GatherShardNames" >> beam.combiners.ToList()  # descriptors only: O(#populations)
                | "Assemble" >> beam.FlatMap(assemble_zoo, self._config))
