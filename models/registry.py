"""`--model` strings for `tessera label` -> a labelling `ModelHandler` (LabelRequest -> LabelResult).

    ocr                          PP-OCRv4 from the rapidocr wheel (models/ocr.py)
    paligemma:PATH[,TOK]         PaliGemma in JAX; PATH a .npz (tokenizer beside it) or a
                                 directory of both; or an explicit TOKENIZER.model after a comma
    savedmodel:DIR               any TF SavedModel image classifier (models/savedmodel_classifier.py)

Model families are imported only when named, so `ocr` runs never import JAX or TensorFlow.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # handlers (and Beam) are imported only when a model is built
    from apache_beam.ml.inference.base import ModelHandler


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    kind: str
    path: str | None = None
    tokenizer: str | None = None

    @property
    def name(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_model(spec: str) -> ModelSpec:
    """Parse a `--model` string.

    Raises:
        ValueError: unknown kind, or a missing/extra PATH.
    """
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in _BUILDERS:
        raise ValueError(f"unknown model {spec!r}; expected one of: ocr, paligemma:PATH, "
                         "savedmodel:PATH")
    if kind == "ocr":
        if rest:
            raise ValueError("`ocr` takes no path (its models ship inside the rapidocr wheel)")
        return ModelSpec("ocr")
    if not rest:
        raise ValueError(f"`{kind}` needs a path: {kind}:PATH")
    if kind == "paligemma":
        ckpt, _, tok = rest.partition(",")
        return ModelSpec("paligemma", ckpt, tok or None)
    return ModelSpec(kind, rest)


def _ocr(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict) -> ModelHandler:
    from tessera.models.handlers.ocr import OcrModelHandler
    return OcrModelHandler(accelerator=accelerator, max_batch_size=batch_size)


def _paligemma(spec: ModelSpec, batch_size: int, accelerator: str | None,
               options: dict) -> ModelHandler:
    from tessera.models.handlers.paligemma import PaliGemmaModelHandler  # JAX only when asked for
    kwargs = {k: v for k, v in options.items() if v is not None
              and k in ("resolution", "max_decode_len")}
    kwargs.update(batch_size=batch_size, accelerator=accelerator, model_name=spec.name)
    if spec.tokenizer:
        return PaliGemmaModelHandler(spec.path, spec.tokenizer, **kwargs)
    return PaliGemmaModelHandler.from_path(spec.path, **kwargs)


def _savedmodel(spec: ModelSpec, batch_size: int, accelerator: str | None,
                options: dict) -> ModelHandler:
    from tessera.models.handlers.savedmodel_classifier import SavedModelClassifierHandler
    return SavedModelClassifierHandler(spec.path, accelerator=accelerator,
                                       max_batch_size=batch_size,
                                       top_k=options.get("top_k") or 5)


_BUILDERS: dict[str, Callable[..., "ModelHandler"]] = {
    "ocr": _ocr, "paligemma": _paligemma, "savedmodel": _savedmodel}


def make_handler(spec: str | ModelSpec, *, batch_size: int = 8, accelerator: str | None = None,
                 **options) -> ModelHandler:
    """The ModelHandler for `spec`; `options` are family-specific (resolution, top_k, ...)."""
    spec = parse_model(spec) if isinstance(spec, str) else spec
    return _BUILDERS[spec.kind](spec, batch_size, accelerator, options)
