"""The JAX model stage: RunInference batching, padding buckets, dead letters, resource hints."""
import numpy as np
import pytest
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.fixtures import tiny_cnn
from tessera.models.handlers.jax_model import InferenceError, JaxModelHandler, bucket_for, check_example
from tessera.transforms.core.model_stage import RunModelStage

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("m") / "tiny.msgpack")
    tiny_cnn.save(path, tiny_cnn.init_params(seed=1, image_size=16, channels=3, features=8))
    return path


def _direct(path, images):
    model = tiny_cnn.load(path)
    return np.asarray(model.apply_fn(model.params, np.stack(images)))


def test_bucket_for():
    assert [bucket_for(n, (1, 8, 32)) for n in (1, 2, 8, 9, 32)] == [1, 8, 8, 32, 32]


def test_check_example_reasons():
    assert check_example(np.zeros((4, 4, 3)), (None, None, 3)) is None
    assert "shape" in check_example(np.zeros((4, 4, 2)), (None, None, 3))
    assert "dtype" in check_example("not an image", None)


def test_run_inference_pads_to_buckets_and_matches_direct_call(model_path):
    handler = JaxModelHandler(tiny_cnn.load, model_path, bucket_sizes=(1, 4, 16), max_batch_size=16)
    loaded = handler.load_model()
    images = [RNG.random((16, 16, 3), dtype=np.float32) for _ in range(23)]
    expected = _direct(model_path, images)
    got = []
    for size in (1, 3, 4, 7, 8):  # ragged batches: 1+3+4+7+8 = 23
        start = len(got)
        got += [r.inference for r in handler.run_inference(images[start:start + size], loaded)]
    np.testing.assert_allclose(np.stack(got), expected, rtol=1e-5, atol=1e-6)
    assert {shape[0] for shape in loaded.compiled_shapes} <= {1, 4, 16}
    assert len(loaded.compiled_shapes) == 3  # 1, 4 and 16; never 3, 7 or 8


def test_failing_example_is_isolated_from_its_batch(model_path):
    handler = JaxModelHandler(tiny_cnn.load, model_path, bucket_sizes=(4,), max_batch_size=4)
    loaded = handler.load_model()
    good = RNG.random((16, 16, 3), dtype=np.float32)
    results = handler.run_inference([good, np.zeros((16, 16, 5), np.float32), good], loaded)
    assert isinstance(results[1].inference, InferenceError)
    assert not isinstance(results[0].inference, InferenceError)
    np.testing.assert_allclose(results[0].inference, results[2].inference)


class _Close:
    """Module-level matcher (pickles): outputs equal the direct model call within tolerance."""

    def __init__(self, expected):
        self.expected = expected

    def __call__(self, actual):
        actual = dict(actual)
        assert sorted(actual) == sorted(self.expected), sorted(actual)
        for key, probs in actual.items():
            np.testing.assert_allclose(probs, self.expected[key], rtol=1e-5, atol=1e-6)


def test_run_model_stage_in_pipeline_with_dead_letters(model_path):
    images = {f"img{i}": RNG.random((16, 16, 3), dtype=np.float32) for i in range(37)}
    expected = dict(zip(images, _direct(model_path, list(images.values()))))
    bad = [("bad-shape", np.zeros((16, 16, 5), np.float32)), ("bad-type", "garbage")]
    handler = JaxModelHandler(tiny_cnn.load, model_path, bucket_sizes=(1, 8, 32), max_batch_size=32,
                              example_shape=(None, None, 3))
    with TestPipeline() as p:
        stage = (p | beam.Create(list(images.items()) + bad)
                 | RunModelStage(handler, stage="classify"))
        assert_that(stage.outputs, _Close(expected), label="Outputs")
        reasons = stage.dead_letters | beam.Map(lambda d: (d.key, d.stage, d.reason))
        assert_that(reasons, equal_to([("bad-shape", "classify", "invalid_example"),
                                       ("bad-type", "classify", "invalid_example")]), label="Dead")


def test_inference_failure_reaches_dead_letters(model_path):
    # No example_shape: the bad record passes validation and fails inside the model instead.
    handler = JaxModelHandler(tiny_cnn.load, model_path, bucket_sizes=(8,), max_batch_size=8)
    good = [(f"ok{i}", RNG.random((16, 16, 3), dtype=np.float32)) for i in range(5)]
    with TestPipeline() as p:
        stage = p | beam.Create(good + [("wrong-channels", np.zeros((16, 16, 5), np.float32))]) | RunModelStage(handler)
        assert_that(stage.outputs | beam.Keys(), equal_to([k for k, _ in good]), label="Good")
        assert_that(stage.dead_letters | beam.Map(lambda d: (d.key, d.reason)),
                    equal_to([("wrong-channels", "inference_failed")]), label="Dead")


class _OutOfMemoryHandler(JaxModelHandler):
    """Fails every batch as a whole, as an accelerator out of memory does."""

    def run_inference(self, batch, model, inference_args=None):
        raise RuntimeError(f"RESOURCE_EXHAUSTED: out of memory for a batch of {len(batch)}")


def test_a_batch_that_fails_as_a_whole_becomes_batch_failed_dead_letters(model_path):
    from apache_beam.metrics.metric import MetricsFilter
    handler = _OutOfMemoryHandler(tiny_cnn.load, model_path, bucket_sizes=(4,), max_batch_size=4)
    keys = [f"k{i}" for i in range(6)]
    p = TestPipeline()
    stage = (p | beam.Create([(k, RNG.random((16, 16, 3), dtype=np.float32)) for k in keys])
             | RunModelStage(handler, stage="unet"))
    assert_that(stage.outputs, equal_to([]), label="NoOutputs")
    letters = stage.dead_letters | beam.Map(lambda d: (d.key, d.stage, d.reason, "RESOURCE_EXHAUSTED" in d.detail))
    assert_that(letters, equal_to([(k, "unet", "batch_failed", True) for k in keys]), label="Dead")
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("unet").with_name("batch_failed"))["counters"]
    assert sum(c.committed for c in counters) == len(keys)
