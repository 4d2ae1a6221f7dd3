"""Zero-shot classification with a two-tower model: class names -> text embeddings (once), then
each image's scores against them, its top classes and, if asked, its embedding.

A template with `{}` ("a photo of a {}.") puts each class name into a sentence before it is
embedded, as CLIP/SigLIP zero-shot evaluation does; without one the bare names are embedded.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tessera.models.siglip.inference import TwoTowerModel


def class_prompts(names: Sequence[str], template: str = "") -> list[str]:
    """The texts the text tower embeds: each name, or the template with `{}` filled in."""
    return [template.replace("{}", n) if "{}" in template else n for n in names]


def top_classes(scores: np.ndarray, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k best (name, score) of one image, best first (ties keep the class order)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return [(names[i], float(scores[i])) for i in order]


@dataclasses.dataclass
class ZeroShotClassifier:
    """A two-tower model plus its class names and their (normalised) text embeddings."""
    model: TwoTowerModel
    class_names: tuple[str, ...] = ()
    class_embeddings: np.ndarray | None = None

    @classmethod
    def build(cls, model: TwoTowerModel, class_names: Sequence[str] = (),
              template: str = "") -> "ZeroShotClassifier":
        names = tuple(class_names)
        embeddings = model.embed_texts(class_prompts(names, template)) if names else None
        return cls(model, names, embeddings)

    def predict(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(image embeddings [B, D], class scores [B, C] or None without classes)."""
        embeddings = self.model.embed_images(images)
        if self.class_embeddings is None:
            return embeddings, None
        return embeddings, self.model.scores(self.model.logits(embeddings, self.class_embeddings))
