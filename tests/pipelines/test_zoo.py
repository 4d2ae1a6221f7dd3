"""End to end: a tiny zoo through build(TestPipeline()), determinism across runs and worker counts,
bad dataset names, and NaN runs kept and marked."""
import dataclasses
import json

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

import apache_beam as beam
from tessera.pipelines import cnn_zoo
from tessera.transforms.zoo import release as zoo_release
from tessera.transforms.zoo import sampling as zoo_sampling
from tessera.training.zoo import population as zoo_population
from tessera.config import ConfigError
from tessera.transforms.zoo.config import ZooConfig
from tessera.transforms.zoo.datasets import load_dataset

NUM_NETWORKS = 3


def _seed_with_one_step_function() -> int:
    """A zoo seed whose first networks share optimizer and activation: one jit compile per process."""
    for seed in range(10_000):
        configs = [zoo_sampling.sample_network(seed, i) for i in range(NUM_NETWORKS)]
        if len({(c.optimizer, c.activation) for c in configs}) == 1 and configs[0].optimizer != "sgd":
            return seed
    raise AssertionError("no seed found")


SEED = _seed_with_one_step_function()


def _config(out, **kw):
    settings = {"dataset": "digits", "num_networks": NUM_NETWORKS, "epochs": 1, "population": 1, "seed": SEED}
    return ZooConfig(output=str(out), **{**settings, **kw})


def _run(config, options=None):
    pipeline = TestPipeline(options=options) if options is None else beam.Pipeline(options=options)
    cnn_zoo.build(pipeline, config)
    pipeline.run().wait_until_finish()
    return np.load(f"{config.output}/weights.npy")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    return out, _run(_config(out))


def test_tiny_zoo_has_the_release_layout(zoo):
    out, weights = zoo
    checkpoints = zoo_sampling.checkpoint_epochs(1)
    assert weights.shape == (NUM_NETWORKS * len(checkpoints), 4970) and weights.dtype == np.float32
    metrics = zoo_release.read_metrics(str(out))
    assert len(metrics) == len(weights)
    assert list(metrics["network_index"]) == [i for i in range(NUM_NETWORKS) for _ in checkpoints]
    assert list(metrics["step"]) == list(checkpoints) * NUM_NETWORKS
    assert {"config.optimizer", "config.learning_rate", "config.train_fraction", "test_accuracy",
            "train_loss"} <= set(metrics.columns)
    assert metrics["test_accuracy"].between(0, 1).all()
    # epoch 0 is the initialisation: training moved every network's weights
    assert not np.allclose(weights[0], weights[1])
    dataset = json.loads((out / "dataset.json").read_text())
    ref = load_dataset("digits")
    assert dataset["test_indices"] == ref.test_indices.tolist()
    assert not set(dataset["train_indices"]) & set(dataset["test_indices"])
    assert (out / "layout.csv").read_text().startswith("varname,start_idx,end_idx,shape\n")
    assert (out / "COMPLETED").exists() and (out / "index.parquet").exists()
    assert not (out / "shards").exists() or not list((out / "shards").iterdir())


def test_same_command_twice_gives_identical_release_files(zoo, tmp_path):
    out, first = zoo
    assert np.array_equal(_run(_config(tmp_path)), first)
    for name in ("weights.npy", "metrics.csv.gz", "index.parquet", "layout.csv"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_one_and_two_workers_give_identical_weights(zoo, tmp_path):
    _, first = zoo
    options = PipelineOptions(["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"])
    assert np.array_equal(_run(_config(tmp_path), options), first)


def test_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown dataset 'not_a_dataset'"):
        _config(tmp_path, dataset="not_a_dataset")
    assert cnn_zoo.main(["--dataset", "not_a_dataset", "--num-networks", "2", "--output", str(tmp_path)]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_a_diverging_network_stops_and_is_marked():
    dataset = load_dataset("digits")
    good = zoo_sampling.sample_network(SEED, 0)
    bad = dataclasses.replace(good, index=99, learning_rate=1e30)
    result = zoo_population.train_population([good, bad], dataset, zoo_seed=SEED, epochs=1,
                                           optimizer=good.optimizer, activation=good.activation,
                                           w_init=good.w_init)
    assert list(result.diverged) == [False, True]
    assert np.isnan(result.metrics["test_accuracy"][1, -1])
    assert np.isfinite(result.metrics["test_accuracy"][0]).all()
    assert result.weights.shape == (2, 2, 4970)  # the diverged run keeps its rows


def _planted_shard(out, config, *, epochs):
    """Write population 0's shard as an interrupted run would have, with recognisable weights."""
    pop = zoo_sampling.populations(config.seed, config.num_networks, config.population)[0]
    net = zoo_sampling.sample_network(config.seed, pop.indices[0])
    rows = [{"network_index": net.index, "step": e, "diverged": False, **zoo_sampling.config_columns(net),
             "config.dataset": config.dataset, **{m: 0.5 for m in zoo_release.METRIC_NAMES}}
            for e in zoo_sampling.checkpoint_epochs(epochs)]
    zoo_release.write_shard(str(out), pop.name, np.full((len(rows), 4970), 7.0, np.float32), rows)


@pytest.mark.parametrize("resume,epochs,reused", [(True, 1, True), (False, 1, False), (True, 2, False)])
def test_resume_reuses_only_a_matching_shard(tmp_path, zoo, resume, epochs, reused):
    config = _config(tmp_path, resume=resume)
    _planted_shard(tmp_path, config, epochs=epochs)  # epochs=2: a stale shard of another run
    weights = _run(config)
    rows = len(zoo_sampling.checkpoint_epochs(1))
    assert np.all(weights[:rows] == 7.0) == reused
    np.testing.assert_array_equal(weights[rows:], zoo[1][rows:])  # the other networks trained as usual
    if not reused:
        np.testing.assert_array_equal(weights, zoo[1])


def test_resume_retrains_a_corrupt_shard(tmp_path, zoo):
    config = _config(tmp_path, resume=True)
    _planted_shard(tmp_path, config, epochs=1)
    pop = zoo_sampling.populations(config.seed, config.num_networks, config.population)[0]
    (tmp_path / "shards" / f"{pop.name}.npy").write_bytes(b"not an npy file")
    np.testing.assert_array_equal(_run(config), zoo[1])
