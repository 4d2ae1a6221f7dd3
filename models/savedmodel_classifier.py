"""Any TensorFlow SavedModel image classifier as a labelling `ModelHandler` (`savedmodel:PATH`).

Each decoded image is resized to the model's input size (read from its serving signature), scaled
to `value_range` (or kept uint8 when the signature wants uint8), and the batch goes through the
signature in one call, so a batch is one fixed-shape tensor. The top-k classes become image-level
boxes (the whole image, label = class name, score = probability); `text` is the top-1 class.
Class names come from `labels.txt` in the SavedModel directory (or its `assets/`), else indices.

Inference goes through the foundation's `models/tf_savedmodel.SavedModelHandler` (Beam's
`TFModelHandlerNumpy`, loading with `tf.saved_model.load`); this module only adapts
LabelRequest -> tensor and scores -> LabelResult.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler
from PIL import Image

from schemas.labels import Box, LabelRequest, LabelResult

LABEL_FILES = ("labels.txt", "assets/labels.txt")


@dataclasses.dataclass
class Model:
    """A loaded SavedModel plus what is needed to feed it."""
    module: Any
    input_name: str
    height: int
    width: int
    dtype: str
    class_names: tuple[str, ...]
    runner: Any = None  # the foundation's SavedModelHandler that calls `module`


def read_class_names(path: str) -> tuple[str, ...]:
    for name in LABEL_FILES:
        candidate = FileSystems.join(path, name)
        if FileSystems.exists(candidate):
            with FileSystems.open(candidate) as f:
                return tuple(line.strip() for line in f.read().decode("utf-8").splitlines()
                             if line.strip())
    return ()


def input_spec(module: Any):
    """(name, TensorSpec) of the single image input: serving signature, else `__call__`'s."""
    signatures = dict(getattr(module, "signatures", {}) or {})
    if signatures:
        name = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        _, kw_specs = signatures[name].structured_input_signature
        if len(kw_specs) != 1:
            raise ValueError(f"expected one image input in signature {name}, got {sorted(kw_specs)}")
        return next(iter(kw_specs.items()))
    specs = getattr(getattr(module, "__call__", None), "input_signature", None)
    if not specs or len(specs) != 1:
        raise ValueError("SavedModel has no serving signature and no single-input __call__")
    return "inputs", specs[0]


def describe(module: Any, path: str, default_size: int = 224) -> Model:
    """Input size/dtype and class names of a loaded SavedModel."""
    input_name, spec = input_spec(module)
    shape = spec.shape.as_list()
    if len(shape) != 4 or shape[-1] not in (3, None):
        raise ValueError(f"SavedModel input {input_name} is {shape}, not an NHWC image")
    return Model(module=module, input_name=input_name, height=int(shape[1] or default_size),
                 width=int(shape[2] or default_size), dtype=spec.dtype.name,
                 class_names=read_class_names(path))


def load(path: str) -> Model:
    """Load the SavedModel at `path` (local or gs://) through the foundation's TF handler."""
    from models.tf_savedmodel import SavedModelHandler
    runner = SavedModelHandler(path)
    model = describe(runner.load_model(), path)
    runner.example_dtype = model.dtype  # stack in the signature's dtype (float32, uint8)
    model.runner = runner
    return model


def preprocess(image: np.ndarray, height: int, width: int, dtype: str,
               value_range: tuple[float, float]) -> np.ndarray:
    """HxWx3 uint8 -> height x width x 3 in `dtype`, scaled to `value_range` unless uint8."""
    if image.shape[:2] != (height, width):
        image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    if dtype == "uint8":
        return image
    lo, hi = value_range
    return (image.astype(np.float32) * ((hi - lo) / 255.0) + lo).astype(dtype)


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Top-k (class, probability); logits are softmaxed first."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.min() < 0 or scores.max() > 1 or abs(scores.sum() - 1.0) > 1e-3:
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]


class SavedModelClassifierHandler(ModelHandler[LabelRequest, LabelResult, Model]):
    """RunInference handler: LabelRequest -> resized tensor -> top-k classes -> LabelResult."""

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

    def get_num_bytes(self, batch: Sequence[LabelRequest]) -> int:
        return sum(int(r.image.nbytes) for r in batch)

    def get_metrics_namespace(self) -> str:
        return "label_savedmodel"

    def get_resource_hints(self) -> dict:
        return {"accelerator": self._accelerator} if self._accelerator else {}
