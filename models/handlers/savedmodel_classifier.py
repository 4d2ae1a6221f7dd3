"""Any TF SavedModel image classifier as a labelling `ModelHandler` (`savedmodel:PATH`).

Adapts LabelRequest -> resized tensor and scores -> LabelResult around
`models/savedmodel_classifier.py`; inference goes through `handlers/tf_savedmodel.py`.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from apache_beam.ml.inference.base import ModelHandler

from tessera.models.handlers.tf_savedmodel import SavedModelHandler
from tessera.models.savedmodel_classifier import Model, describe, preprocess, top_k
from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.schemas.labels import Box, LabelRequest, LabelResult


def load(path: str) -> Model:
    """Load the SavedModel at `path` (local or gs://) through the foundation's TF handler."""
    runner = SavedModelHandler(path)
    model = describe(runner.load_model(), path)
    runner.example_dtype = model.dtype  # stack in the signature's dtype (float32, uint8)
    model.runner = runner
    return model


class SavedModelClassifierHandler(LabelHandlerMixin, ModelHandler[LabelRequest, LabelResult, Model]):
    """RunInference handler: LabelRequest -> resized tensor -> top-k classes -> LabelResult."""

    METRICS_NAMESPACE = "label_savedmodel"

    def __init__(self, path: str, *, top_k: int = 5, value_range: tuple[float, float] = (0.0, 1.0),
                 accelerator: str | None = None, min_batch_size: int = 1,
                 max_batch_size: int = 64):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._path = path
        self._top_k = top_k
        self._value_range = tuple(value_range)
        self._accelerator = accelerator
        self.model_name = f"savedmodel:{path}"

    def load_model(self) -> Model:
        model = load(self._path)
        logging.info("SavedModel %s: input %s %dx%d %s, %d class names", self._path,
                     model.input_name, model.height, model.width, model.dtype,
                     len(model.class_names))
        return model

    def run_inference(self, batch: Sequence[LabelRequest], model: Model,
                      inference_args: dict[str, Any] | None = None) -> list[LabelResult]:
        x = [preprocess(r.image, model.height, model.width, model.dtype, self._value_range)
             for r in batch]
        predictions = model.runner.run_inference(x, model.module, inference_args)
        results = []
        for request, prediction in zip(batch, predictions):
            h, w = request.image.shape[:2]
            boxes = tuple(
                Box(label=model.class_names[i] if i < len(model.class_names) else str(i),
                    y_min=0.0, x_min=0.0, y_max=float(h), x_max=float(w), score=p)
                for i, p in top_k(prediction.inference, self._top_k))
            results.append(LabelResult(key=request.key, model=self.model_name,
                                       prompt=request.prompt, text=boxes[0].label, boxes=boxes))
        return results
