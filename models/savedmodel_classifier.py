"""Any TensorFlow SavedModel image classifier as a labelling `ModelHandler` (`savedmodel:PATH`).

Each decoded image is resized to the model's input size (read from its serving signature), scaled
to `value_range` (or kept uint8 when the signature wants uint8), and the batch goes through the
signature in one call, so a batch is one fixed-shape tensor. The top-k classes become image-level
boxes (the whole image, label = class name, score = probability); `text` is the top-1 class.
Class names come from `labels.txt` in the SavedModel directory (or its `assets/`), else indices.

This module holds the Beam-free parts (signature, class names, resizing, top-k); loading and
inference go through `models/handlers/savedmodel_classifier.py`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from tessera import fileio

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


def weights_file(path: str, tokenizer: str | None = None) -> str:
    """The SavedModel's graph file (what a run manifest checksums)."""
    del tokenizer
    return fileio.join(path, "saved_model.pb")


def read_class_names(path: str) -> tuple[str, ...]:
    for name in LABEL_FILES:
        candidate = fileio.join(path, name)
        if fileio.exists(candidate):
            with fileio.open_read(candidate) as f:
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


def write_tiny(directory: str, seed: int = 0) -> str:
    """The tiny variant: a fixed-weight Keras 'classifier' (mean colour -> red/green/blue logits,
    8x8 input) exported as a SavedModel with its labels.txt; `seed` is unused (no random weights)."""
    del seed
    import keras

    path = fileio.join(directory, "colour_classifier")
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(3, use_bias=False)
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.eye(3, dtype=np.float32) * 10.0])
    model.export(path)
    fileio.atomic_write_text(fileio.join(path, "labels.txt"), "red\ngreen\nblue\n")
    return path
