"""TensorFlow SavedModels through Beam's own TF handler, behind the same face as JaxModelHandler.

`RunModelStage(savedmodel_handler(path))` works exactly like a JAX model stage: numpy examples in,
numpy outputs out, the accelerator hint on the inference step only. Beam's handler loads with
`tf.keras.models.load_model`, which Keras 3 refuses for SavedModels; this subclass loads with
`tf.saved_model.load` instead and calls the model or its serving signature.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

from tessera.models.handlers.jax_model import check_example


class SavedModelHandler(TFModelHandlerNumpy):
    """TFModelHandlerNumpy returning numpy outputs, with resource hints and example validation."""

    def __init__(self, model_uri: str, *, accelerator: str | None = None,
                 example_shape: tuple | None = None, example_dtype: str = "float32",
                 min_batch_size: int = 1, max_batch_size: int = 64, **kwargs):
        super().__init__(model_uri=model_uri, min_batch_size=min_batch_size,
                         max_batch_size=max_batch_size, **kwargs)
        self._accelerator = accelerator
        self.example_shape = example_shape
        self.example_dtype = example_dtype

    def load_model(self):
        import tensorflow as tf
        return tf.saved_model.load(self._model_uri)

    def run_inference(self, batch: Sequence[np.ndarray], model: Any,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        import tensorflow as tf
        stacked = tf.constant(np.stack([np.asarray(x, dtype=self.example_dtype) for x in batch]))
        if callable(model):
            outputs = model(stacked, **(inference_args or {}))
        else:  # e.g. Keras `model.export()`: only a serving signature
            outputs = model.signatures["serving_default"](stacked)
        if isinstance(outputs, dict):
            if len(outputs) != 1:
                raise ValueError(f"SavedModel returns several outputs {sorted(outputs)}; expected one")
            outputs = next(iter(outputs.values()))
        outputs = np.asarray(outputs)
        return [PredictionResult(x, y, self._model_uri) for x, y in zip(batch, outputs)]

    def validate_example(self, example: Any) -> str | None:
        return check_example(example, self.example_shape)

    def get_resource_hints(self) -> dict:
        return {"accelerator": self._accelerator} if self._accelerator else {}


def savedmodel_handler(path: str, **kwargs) -> SavedModelHandler:
    """Handler for the SavedModel directory at `path` (local or gs://)."""
    return SavedModelHandler(path, **kwargs)
