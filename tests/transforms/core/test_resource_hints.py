"""The accelerator hint lands on the model stage of the portable pipeline proto, and only there."""
import apache_beam as beam
import numpy as np
from apache_beam.transforms.resources import AcceleratorHint

from tests.fixtures import tiny_cnn
from tessera.models.handlers.jax_model import JaxModelHandler
from tessera.transforms.core.model_stage import RunModelStage

ACCELERATOR = "type:nvidia-l4;count:1;install-nvidia-driver"
URN = AcceleratorHint.urn


def _hinted_transforms(proto):
    envs = proto.components.environments
    hinted = {}
    for tid, transform in proto.components.transforms.items():
        if transform.subtransforms:  # composites carry no environment of their own
            continue
        hints = envs[transform.environment_id].resource_hints if transform.environment_id else {}
        hinted[transform.unique_name] = hints.get(URN)
    return hinted


def test_accelerator_hint_only_on_model_stage(tmp_path):
    path = str(tmp_path / "m.msgpack")
    tiny_cnn.save(path, tiny_cnn.init_params(image_size=8, features=4))
    pipeline = beam.Pipeline()
    stage = (pipeline
             | "Read" >> beam.Create([("a", np.zeros((8, 8, 3), np.float32))])
             | "Preprocess" >> beam.Map(lambda kv: (kv[0], kv[1] + 1))
             | "Model" >> RunModelStage(JaxModelHandler(tiny_cnn.load, path, accelerator=ACCELERATOR)))
    _ = stage.outputs | "Postprocess" >> beam.Map(str)
    hinted = _hinted_transforms(pipeline.to_runner_api())
    with_hint = {name for name, hint in hinted.items() if hint}
    assert with_hint, "no transform carries the accelerator hint"
    assert all(name.startswith("Model/RunInference/") and "BeamML_RunInference" in name for name in with_hint), with_hint
    assert {hinted[name] for name in with_hint} == {ACCELERATOR.encode()}
    others = [n for n in hinted if n.startswith(("Read", "Preprocess", "Postprocess", "Model/Validate"))]
    assert others and not any(hinted[n] for n in others)


def test_no_hint_without_accelerator(tmp_path):
    path = str(tmp_path / "m.msgpack")
    tiny_cnn.save(path, tiny_cnn.init_params(image_size=8, features=4))
    pipeline = beam.Pipeline()
    _ = (pipeline | beam.Create([("a", np.zeros((8, 8, 3), np.float32))])
         | RunModelStage(JaxModelHandler(tiny_cnn.load, path)))
    assert not any(_hinted_transforms(pipeline.to_runner_api()).values())
