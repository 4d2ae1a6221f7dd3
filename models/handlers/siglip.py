"""Beam `ModelHandler` for SigLIP / LiT zero-shot labelling (`siglip:PATH`, `lit:PATH`).

`load_model` (on the worker) loads the checkpoint and embeds the class prompts once; each batch
then only runs the image tower. Results follow the SavedModel classifier's convention: the top-k
classes as image-level boxes (the whole image, label = class name, score), `text` = the top-1
class; with `embeddings=True` the L2-normalised image embedding goes in `LabelResult.embedding`.
A request the model cannot take (not HxWx3 uint8) comes back with `error` set; a failing model
raises, so `RunInference(...).with_exception_handling()` dead-letters the batch.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler

from tessera.models.handlers.image_classifier import whole_image_results
from tessera.models.siglip import resolve
from tessera.models.siglip.inference import TwoTowerModel
from tessera.models.siglip.zero_shot import ZeroShotClassifier, top_classes
from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.schemas.labels import LabelRequest, LabelResult


class ZeroShotHandler(LabelHandlerMixin, ModelHandler[LabelRequest, LabelResult, ZeroShotClassifier]):
    """LabelRequest -> image embedding -> class scores -> LabelResult.

    Args:
      checkpoint_path, tokenizer_path: big_vision two-tower `.npz` and its SentencePiece model.
      scoring: "sigmoid" (SigLIP) or "softmax" (LiT).
      class_names: the classes to score; empty for embeddings only.
      template: a prompt with `{}` each class name is put into; "" embeds the bare names.
      top_k: classes kept per image.
      embeddings: also return each image's embedding.
    """

    METRICS_NAMESPACE = "tessera_siglip"

    def __init__(self, checkpoint_path: str, tokenizer_path: str, *, scoring: str = "sigmoid",
                 class_names: Sequence[str] = (), template: str = "", top_k: int = 5,
                 embeddings: bool = False, batch_size: int = 8, model_name: str = "siglip",
                 accelerator: str | None = None, min_batch_size: int = 1):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size)
        self.checkpoint_path, self.tokenizer_path = checkpoint_path, tokenizer_path
        self.scoring, self.class_names, self.template = scoring, tuple(class_names), template
        self.top_k, self.embeddings, self.batch_size = top_k, embeddings, batch_size
        self.model_name = model_name
        self._accelerator = accelerator

    @classmethod
    def from_path(cls, path: str, **kw) -> "ZeroShotHandler":
        """PATH is a .npz (tokenizer beside it), a directory holding both, or a Hugging Face
        SigLIP directory."""
        checkpoint, tokenizer = resolve(path)
        return cls(checkpoint, tokenizer, **kw)

    def load_model(self) -> ZeroShotClassifier:
        model = TwoTowerModel.load(self.checkpoint_path, self.tokenizer_path,
                                   scoring=self.scoring, batch_size=self.batch_size)
        logging.info("ZeroShotHandler: %s at %dpx, %d classes, %s scoring", self.checkpoint_path,
                     model.resolution, len(self.class_names), self.scoring)
        return ZeroShotClassifier.build(model, self.class_names, self.template)

    def run_inference(self, batch: Sequence[LabelRequest], model: ZeroShotClassifier,
                      inference_args: dict[str, Any] | None = None) -> Iterable[LabelResult]:
        return whole_image_results(batch, self.model_name, model.predict,
                                   lambda row, k: top_classes(row, model.class_names, k),
                                   self.top_k, self.embeddings)
