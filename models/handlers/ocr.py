"""OCR as a Beam `ModelHandler` over `models/ocr.py` (PP-OCRv4 from the rapidocr wheel).

The engine runs one image at a time (detection output sizes differ per image); RunInference still
gives batching of the surrounding I/O, model sharing per process, metrics and dead letters.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from apache_beam.ml.inference.base import ModelHandler

from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.models.ocr import MODEL_NAME, Model, lines_to_result, load
from tessera.schemas.labels import LabelRequest, LabelResult


class OcrModelHandler(LabelHandlerMixin, ModelHandler[LabelRequest, LabelResult, Model]):
    """RunInference handler: LabelRequest in, LabelResult out (failures as `error`, not raised)."""

    METRICS_NAMESPACE = "label_ocr"

    def __init__(self, *, accelerator: str | None = None, num_threads: int = -1,
                 min_batch_size: int = 1, max_batch_size: int = 16, **engine_kwargs):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._accelerator = accelerator
        self._num_threads = num_threads
        self._engine_kwargs = engine_kwargs

    def load_model(self) -> Model:
        model = load(use_cuda=bool(self._accelerator), num_threads=self._num_threads,
                     **self._engine_kwargs)
        logging.info("OCR engine loaded from the wheel: %s", ", ".join(model.models))
        return model

    def run_inference(self, batch: Sequence[LabelRequest], model: Model,
                      inference_args: dict[str, Any] | None = None) -> list[LabelResult]:
        results = []
        for request in batch:
            try:
                lines = model(request.image)
            except model.errors as e:
                results.append(LabelResult(key=request.key, model=MODEL_NAME, prompt=request.prompt,
                                           text="", error=f"ocr_failed: {type(e).__name__}: {e}"))
                continue
            results.append(lines_to_result(request.key, request.prompt, lines))
        return results
