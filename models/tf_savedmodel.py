"""TensorFlow SavedModels through Beam's own TF handler, behind the same face as JaxModelHandler.

`RunModelStage(savedmodel_handler(path))` works exactly like a JAX model stage: numpy examples in,
numpy outputs out, the accelerator hint on the inference step only.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

from models.jax_handler import check_example


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

    def run_inference(self, batch: Sequence[np.ndarray], model: Any,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        batch = [np.asarray(x, dtype=self.example_dtype) for x in batch]
        results = super().run_inference(batch, model, inference_args)
        return [PredictionResult(r.example, np.asarray(r.inference), r.model_id) for r in results]

    def validate_example(self, example: Any) -> str | None:
        return check_example(example, self.example_shape, self.example_dtype)

    def get_resource_hints(self) -> dict:
        return {"accelerator": self._accelerator} if self._accelerator else {}


def savedmodel_handler(path: str, **kwargs) -> SavedModelHandler:
    """Handler for the SavedModel directory at `path` (local or gs://)."""
    return SavedModelHandler(path, **kwargs)
