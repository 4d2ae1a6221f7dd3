"""Beam `ModelHandler` for the JAX image classifiers (`vit:PATH`, `mixer:PATH`, `vmoe:PATH`).

`load_model` (once per worker process, shared by its threads through RunInference; one copy per
machine with `share_across_processes`) loads the checkpoint and jits the forward pass; each batch
is one padded call. Results follow the SavedModel classifier's and SigLIP's convention: the top-k
classes as image-level boxes (the whole image, label = class name, score = softmax), `text` =
the top-1 class; with `embeddings=True` the L2-normalised pre-logits go in
`LabelResult.embedding`. A request the model cannot take (not HxWx3 uint8) comes back with
`error` set; a failing model raises, so `RunInference(...).with_exception_handling()`
dead-letters the batch.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler

from tessera.models.image_classifier import ImageClassifier
from tessera.models.paligemma.preprocess import check_image
from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.schemas.labels import Box, LabelRequest, LabelResult


class ImageClassifierHandler(LabelHandlerMixin, ModelHandler[LabelRequest, LabelResult, ImageClassifier]):
    """LabelRequest -> logits and pre-logits -> LabelResult.

    Args:
      load_fn: the family's module-level `load(path, **kw) -> ImageClassifier` (pickled by
        reference), e.g. `tessera.models.vit.load`.
      path: the `.npz` (labels.txt beside it) or a directory holding both; local or gs://.
      class_names: names for the head's classes, overriding labels.txt.
      top_k: classes kept per image.
      embeddings: also return each image's embedding.
      load_kwargs: family-specific options for `load_fn` (V-MoE: capacity_ratio).
    """

    METRICS_NAMESPACE = "tessera_image_classifier"

    def __init__(self, load_fn: Callable[..., ImageClassifier], path: str, *,
                 class_names: Sequence[str] = (), top_k: int = 5, embeddings: bool = False,
                 batch_size: int = 8, model_name: str = "", accelerator: str | None = None,
                 share_across_processes: bool = False, min_batch_size: int = 1,
                 load_kwargs: dict | None = None):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size,
                         large_model=share_across_processes)
        self._load_fn, self.path = load_fn, path
        self.class_names, self.top_k, self.embeddings = tuple(class_names), top_k, embeddings
        self.batch_size, self.model_name = batch_size, model_name or path
        self._accelerator = accelerator
        self.load_kwargs = dict(load_kwargs or {})

    def load_model(self) -> ImageClassifier:
        model = self._load_fn(self.path, class_names=self.class_names,
                              batch_size=self.batch_size, **self.load_kwargs)
        logging.info("ImageClassifierHandler: %s at %dpx, %d classes, %d-d embeddings",
                     self.path, model.resolution, model.cfg.num_classes, model.cfg.embed_dim)
        return model

    def run_inference(self, batch: Sequence[LabelRequest], model: ImageClassifier,
                      inference_args: dict[str, Any] | None = None) -> Iterable[LabelResult]:
        return whole_image_results(batch, self.model_name, model.predict, model.top_classes,
                                   self.top_k, self.embeddings)


def whole_image_results(batch: Sequence[LabelRequest], model_name: str, predict: Callable,
                        rank: Callable, top_k: int, embeddings: bool) -> list[LabelResult]:
    """Rows of an image classifier (ViT, Mixer, SigLIP zero-shot): the top-k classes as
    whole-image boxes, `text` the best one, the embedding if asked for; an image the model cannot
    take becomes an `invalid_image` error row (so a dead letter), not a failed batch.

    predict(images) -> (embeddings, scores or None); rank(scores_row, k) -> [(name, score)].
    """
    results: list[LabelResult | None] = [None] * len(batch)
    todo = []
    for i, request in enumerate(batch):
        reason = check_image(request.image)
        if reason:
            results[i] = LabelResult(request.key, model_name, request.prompt, "", (),
                                     f"invalid_image: {reason}")
        else:
            todo.append(i)
    vectors, scores = predict([batch[i].image for i in todo])
    for row, i in enumerate(todo):
        request = batch[i]
        height, width = request.image.shape[:2]
        boxes = () if scores is None else tuple(
            Box(label=name, y_min=0.0, x_min=0.0, y_max=float(height), x_max=float(width),
                score=score)
            for name, score in rank(scores[row], top_k))
        results[i] = LabelResult(
            request.key, model_name, request.prompt, boxes[0].label if boxes else "",
            boxes, None, tuple(vectors[row].tolist()) if embeddings else None)
    return results
