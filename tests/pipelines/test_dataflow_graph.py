"""Each workload's job graph as Dataflow would receive it, built offline: DataflowRunner with
--dry_run (translation, Dataflow overrides, environment merging and staging, no submission).
The accelerator resource hint sits on the model stage alone, and the sdist Beam stages from
setup.py installs in a fresh environment and imports every workload from outside the repo."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.transforms.resources import AcceleratorHint

from tests.fixtures import fresh_venv
from tests.fixtures.servers import OFFLINE_GCP_ENV

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCELERATOR = "type:nvidia-l4;count:1;install-nvidia-driver"
BUCKET = "gs://tessera-dry-run"  # never contacted: a dry run stages and submits nothing
WORKLOAD_MODULES = ("buildings", "buildings_train", "buildings_eval", "mcd_split", "mcd_stats",
                    "cnn_zoo", "zoo_predict", "mixture", "label")


def dataflow_options(**extra) -> PipelineOptions:
    flags = ["--runner", "DataflowRunner", "--dry_run", "True", "--project", "tessera-dry-run",
             "--region", "us-central1", "--temp_location", f"{BUCKET}/tmp"]
    for name, value in extra.items():
        flags += [f"--{name}", value]
    return PipelineOptions(flags)


def dataflow_job(tmp, build, config, **options):
    """The Dataflow job (apiclient.Job: its pipeline proto after Dataflow's translation) of
    `build(pipeline, config)`, made offline by the runner's dry run; what the runner stages
    (pickled session, sdist) is written under `tmp`."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in OFFLINE_GCP_ENV.items():  # no metadata-server probe for credentials
            mp.setenv(name, value)
        mp.setattr(tempfile, "tempdir", str(tmp))
        pipeline = beam.Pipeline(options=dataflow_options(**options))
        build(pipeline, config)
        result = pipeline.run()
    assert result.state == "DONE"
    return result.job


def hinted_transforms(proto: beam_runner_api_pb2.Pipeline) -> dict[str, bytes | None]:
    """Every leaf transform's accelerator hint (None without one), by unique name."""
    envs = proto.components.environments
    out = {}
    for transform in proto.components.transforms.values():
        if transform.subtransforms:  # composites run nothing themselves
            continue
        env = envs[transform.environment_id] if transform.environment_id else None
        out[transform.unique_name] = env.resource_hints.get(AcceleratorHint.urn) if env else None
    return out


# --- the workloads, built with tiny local inputs (only their driver-side checks read them) ----

def _buildings(tmp):
    from tessera.pipelines import buildings
    from tessera.transforms.buildings.config import BuildingsConfig

    tif = os.path.join(ROOT, "tests", "data", "real", "*.tif")
    return buildings.build, BuildingsConfig(input=tif, output=f"{BUCKET}/buildings", accelerator=ACCELERATOR)


def _label(tmp):
    from tessera.pipelines import label

    return label.build, label.LabelConfig(inputs=(f"{BUCKET}/images/*.png",), output=f"{BUCKET}/labels",
                                          model="ocr", accelerator=ACCELERATOR)


def _cnn_zoo(tmp):
    from tessera.pipelines import cnn_zoo
    from tessera.transforms.zoo.config import ZooConfig

    return cnn_zoo.build, ZooConfig(dataset="digits", num_networks=3, epochs=1, population=1,
                                    output=f"{BUCKET}/zoo", accelerator=ACCELERATOR)


def _mcd_split(tmp):
    from tessera.pipelines import mcd_split
    from tessera.transforms.mcd.config import McdSplitConfig

    return mcd_split.build, McdSplitConfig(dataset="scan", output=f"{BUCKET}/mcd")


def _mcd_stats(tmp):
    from tessera.pipelines import mcd_stats
    from tessera.transforms.mcd.config import McdStatsConfig

    split = tmp / "split.json"
    split.write_text(json.dumps({"trainIdxs": [0], "devIdxs": [1], "testIdxs": [2]}))
    return mcd_stats.build, McdStatsConfig(split=str(split), dataset="scan", output=f"{BUCKET}/stats.json")


def _zoo_predict(tmp):
    from tessera.pipelines import zoo_predict
    from tessera.transforms.zoo.config import ZooPredictConfig
    from tests.pipelines.test_zoo_predict import _synthetic_zoo

    _synthetic_zoo(tmp / "zoo")
    return zoo_predict.build, ZooPredictConfig(zoo=str(tmp / "zoo"), output=f"{BUCKET}/zoo_predict")


def _mixture(tmp):
    from tessera.pipelines import mixture
    from tessera.schemas.mixture import mixture_config_from_dict
    from tessera.transforms.mixture.config import MixtureJobConfig
    from tests.pipelines.test_mixture import _config, _make_sources

    _make_sources(str(tmp))
    return mixture.build, MixtureJobConfig(mixture_config_from_dict(_config(str(tmp))), f"{BUCKET}/mixture")


# workload -> (pipeline and config, the stage whose model step alone carries --accelerator)
WORKLOADS = {
    "buildings": (_buildings, "Model/RunInference/"),
    "label": (_label, "Label/RunInference/"),
    "cnn-zoo": (_cnn_zoo, "TrainPopulations/Train"),
    "mcd-split": (_mcd_split, None),
    "mcd-stats": (_mcd_stats, None),
    "zoo-predict": (_zoo_predict, None),
    "mixture": (_mixture, None),
}


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_accelerator_hint_sits_on_the_model_stage_alone(name, tmp_path):
    make, stage = WORKLOADS[name]
    job = dataflow_job(tmp_path, *make(tmp_path))
    proto = job.proto_pipeline
    envs = proto.components.environments
    assert all(env.urn == "beam:env:docker:v1" for env in envs.values())  # what Dataflow runs
    hinted = hinted_transforms(proto)
    with_hint = sorted(n for n, hint in hinted.items() if hint)
    if stage is None:  # no model stage, no --accelerator flag: no transform asks for a GPU
        assert with_hint == []
        return
    assert with_hint, f"{name}: no transform carries the accelerator hint"
    assert all(n.startswith(stage) for n in with_hint), f"{name}: hint outside {stage}: {with_hint}"
    assert {hinted[n] for n in with_hint} == {ACCELERATOR.encode()}
    unhinted = [n for n, hint in hinted.items() if not hint]
    assert len(unhinted) > len(with_hint)  # reading, writing, dead letters, manifest stay on CPU


@pytest.fixture(scope="module")
def staged_sdist(tmp_path_factory):
    """The sdist the runner builds from --setup_file and stages for the workers, from the
    buildings job's environment."""
    tmp = tmp_path_factory.mktemp("sdist")
    job = dataflow_job(tmp, *_buildings(tmp), setup_file=os.path.join(ROOT, "setup.py"))
    staged = set()
    for env in job.proto_pipeline.components.environments.values():
        for artifact in env.dependencies:
            if artifact.type_urn == "beam:artifact:type:file:v1":
                staged.add(beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path)
    sdists = [p for p in staged if p.endswith(".tar.gz")]
    assert len(sdists) == 1 and sdists[0].startswith(str(tmp)), staged
    return sdists[0]


@pytest.mark.slow
def test_staged_sdist_installs_and_imports_every_workload(staged_sdist, tmp_path):
    python = fresh_venv.create(str(tmp_path / "venv"))
    fresh_venv.pip_install(python, staged_sdist)
    script = ("import importlib, json, os, tessera\n"
              "from tessera.models.base import SHIPPED_UNET\n"
              f"mods = [importlib.import_module('tessera.pipelines.' + m) for m in {WORKLOAD_MODULES!r}]\n"
              "print(json.dumps({'tessera': tessera.__file__, 'mains': [callable(m.main) for m in mods],"
              " 'weights': os.path.exists(SHIPPED_UNET)}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([python, "-c", script], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tessera"].startswith(str(tmp_path / "venv")), seen  # the sdist's copy, not the repo
    assert seen["mains"] == [True] * len(WORKLOAD_MODULES) and seen["weights"], seen
