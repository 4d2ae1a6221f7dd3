"""Beam `ModelHandler` for OWL-ViT open-vocabulary detection (`owlvit:PATH --queries 'a ; b'`).

`load_model` (on the worker) loads the checkpoint and embeds the queries once; each batch then
runs only the image tower and the two heads. Each row holds the image's boxes (label = the
query, score = its sigmoid, pixel corners in the decoded image), best first, and `text` = the
best box's label ("" when no box reaches `min_score`). A request the model cannot take (not
HxWx3 uint8) comes back with `error` set; a failing model raises, so
`RunInference(...).with_exception_handling()` dead-letters the batch.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from tessera.models.owlvit.inference import Detector
from tessera.models.paligemma.preprocess import check_image
from tessera.models.siglip.zero_shot import class_prompts
from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.schemas.labels import LabelRequest, LabelResult


@dataclasses.dataclass
class QueryDetector:
    """A loaded detector and its queries' embeddings (computed once per worker)."""
    detector: Detector
    names: tuple[str, ...]
    queries: np.ndarray


class OwlViTHandler(LabelHandlerMixin, ModelHandler[LabelRequest, LabelResult, QueryDetector]):
    """LabelRequest -> per-token class logits and boxes -> LabelResult.

    Args:
      checkpoint_path, tokenizer_path: scenic checkpoint or HF directory, and the CLIP tokenizer.
      queries: the texts to detect (box labels).
      template: a prompt with `{}` each query is put into before embedding; "" embeds them bare.
      min_score: boxes whose best query scores lower are dropped.
      max_boxes: boxes kept per image, best first.
    """

    METRICS_NAMESPACE = "tessera_owlvit"

    def __init__(self, checkpoint_path: str, tokenizer_path: str, *, queries: Sequence[str],
                 template: str = "", min_score: float = 0.1, max_boxes: int = 100,
                 batch_size: int = 8, model_name: str = "owlvit", accelerator: str | None = None,
                 min_batch_size: int = 1):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size)
        if not queries:
            raise ValueError("owlvit needs at least one query")
        self.checkpoint_path, self.tokenizer_path = checkpoint_path, tokenizer_path
        self.queries, self.template = tuple(queries), template
        self.min_score, self.max_boxes, self.batch_size = min_score, max_boxes, batch_size
        self.model_name, self._accelerator = model_name, accelerator

    @classmethod
    def from_path(cls, path: str, **kw) -> "OwlViTHandler":
        from tessera.models.owlvit import resolve
        checkpoint, tokenizer = resolve(path)
        return cls(checkpoint, tokenizer, **kw)

    def load_model(self) -> QueryDetector:
        detector = Detector.load(self.checkpoint_path, self.tokenizer_path,
                                 batch_size=self.batch_size)
        logging.info("OwlViTHandler: %s at %dpx, %d boxes per image, %d queries",
                     self.checkpoint_path, detector.resolution, detector.cfg.num_patches,
                     len(self.queries))
        return QueryDetector(detector, self.queries,
                             detector.embed_queries(class_prompts(self.queries, self.template)))

    def run_inference(self, batch: Sequence[LabelRequest], model: QueryDetector,
                      inference_args: dict[str, Any] | None = None) -> Iterable[LabelResult]:
        results: list[LabelResult | None] = [None] * len(batch)
        todo = []
        for i, request in enumerate(batch):
            if reason := check_image(request.image):
                results[i] = LabelResult(request.key, self.model_name, request.prompt, "", (),
                                         f"invalid_image: {reason}")
            else:
                todo.append(i)
        found = model.detector.detect([batch[i].image for i in todo], model.names, model.queries,
                                      min_score=self.min_score, max_boxes=self.max_boxes)
        for i, boxes in zip(todo, found):
            request = batch[i]
            results[i] = LabelResult(request.key, self.model_name, request.prompt,
                                     boxes[0].label if boxes else "", boxes)
        return results
