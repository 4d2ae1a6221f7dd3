"""A TF SavedModel runs through RunModelStage exactly like a JAX model, via Beam's TF handler."""
import numpy as np
import apache_beam as beam
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tessera.models.handlers.tf_savedmodel import savedmodel_handler
from tessera.transforms.core.model_stage import RunModelStage


class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def __call__(self, x):
        return 2.0 * x + 1.0


def _as_tuples(kv):
    key, out = kv
    return key, tuple(np.round(out, 4).tolist())


def test_savedmodel_through_model_stage(tmp_path):
    path = str(tmp_path / "doubler")
    tf.saved_model.save(_Doubler(), path)
    examples = [(f"k{i}", np.full(3, i, np.float32)) for i in range(5)]
    handler = savedmodel_handler(path, example_shape=(3,), max_batch_size=4)
    with TestPipeline() as p:
        stage = p | beam.Create(examples + [("bad", np.zeros(4, np.float32))]) | RunModelStage(handler, stage="tf")
        assert_that(stage.outputs | beam.Map(_as_tuples),
                    equal_to([(k, (2.0 * i + 1,) * 3) for i, (k, _) in enumerate(examples)]), label="Out")
        assert_that(stage.dead_letters | beam.Map(lambda d: (d.key, d.reason)),
                    equal_to([("bad", "invalid_example")]), label="Dead")


def test_keras_exported_model_through_serving_signature(tmp_path):
    import keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    path = str(tmp_path / "keras_export")
    model.export(path)
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    handler = savedmodel_handler(path, example_shape=(4,))
    results = handler.run_inference(list(x), handler.load_model())
    np.testing.assert_allclose(np.stack([r.inference for r in results]), expected, rtol=1e-5)
