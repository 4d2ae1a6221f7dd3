"""OCR: the PP-OCRv4 ONNX models that ship inside `rapidocr_onnxruntime`.

The detector, direction classifier and recogniser are in the wheel, so labelling works offline and
on Dataflow workers without any download. The Beam handler is
`models/handlers/ocr.py`. Output: one `Box` per detected text line (label = the line's
text, score = recognition confidence) and the lines joined with newlines in reading order.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np
from PIL import Image

from tessera.schemas.labels import Box, LabelResult

MODEL_NAME = "ocr:ppocr-v4"
# Paddle's server default: cap the long side at 960 px instead of RapidOCR's "min side >= 736"
# upscaling, which is ~20x slower on text lines and splits words into fragments.
DETECT_SIDE = 960
ENGINE_DEFAULTS = {"det_limit_type": "max", "det_limit_side_len": DETECT_SIDE}
MAX_UPSCALE = 4.0


def _wheel_models() -> list[str]:
    import rapidocr_onnxruntime
    root = os.path.join(os.path.dirname(rapidocr_onnxruntime.__file__), "models")
    return sorted(os.path.join(root, f) for f in os.listdir(root) if f.endswith(".onnx"))


class Model:
    """The RapidOCR engine plus the settings it was built with (what `load` returns)."""

    def __init__(self, *, use_cuda: bool = False, num_threads: int = -1, **engine_kwargs):
        import cv2
        from rapidocr_onnxruntime import RapidOCR
        models = _wheel_models()
        if len(models) < 3:
            raise FileNotFoundError(f"PP-OCR ONNX models missing from the rapidocr wheel: {models}")
        kwargs = {**ENGINE_DEFAULTS, **engine_kwargs, "intra_op_num_threads": num_threads}
        if use_cuda:
            kwargs.update(det_use_cuda=True, cls_use_cuda=True, rec_use_cuda=True)
        self.engine = RapidOCR(**kwargs)
        self.models = [os.path.basename(m) for m in models]
        # What the engine raises on odd inputs (onnxruntime, OpenCV, numpy): per-image failures.
        self.errors = (RuntimeError, ValueError, IndexError, cv2.error)

    def __call__(self, image: np.ndarray) -> list[tuple[list, str, float]]:
        """Lines of an HxWx3 RGB uint8 image as (4-point polygon, text, score), reading order.

        Small images are first upscaled (bicubic, at most MAX_UPSCALE x) to a DETECT_SIDE long
        side: at native size the detector merges the words of small text into one box and the
        recogniser then drops the spaces (CER 7% -> 2% on benchmarks/ocr_quality.py).
        """
        height, width = image.shape[:2]
        factor = min(MAX_UPSCALE, DETECT_SIDE / max(height, width))
        if factor > 1.0:
            size = (round(width * factor), round(height * factor))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        else:
            factor = 1.0
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # PP-OCR was trained on OpenCV's BGR
        lines, _ = self.engine(bgr)
        return [((np.asarray(poly, dtype=np.float64) / factor).tolist(), str(text), float(score))
                for poly, text, score in (lines or [])]


def load(path: str | None = None, **kwargs) -> Model:
    """The OCR model; `path` is unused (the weights are the wheel's), kept for the common face."""
    del path
    return Model(**kwargs)


def write_tiny(directory: str, seed: int = 0) -> None:
    """Nothing to write: the PP-OCRv4 mobile models in the wheel are already small (`ocr`)."""
    del directory, seed


def lines_to_result(key: str, prompt: str, lines: Iterable[tuple[list, str, float]]) -> LabelResult:
    """Engine lines -> LabelResult with one axis-aligned box per line (pixel coordinates)."""
    boxes = []
    for poly, text, score in lines:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)  # (x, y) points
        boxes.append(Box(label=text, y_min=float(pts[:, 1].min()), x_min=float(pts[:, 0].min()),
                         y_max=float(pts[:, 1].max()), x_max=float(pts[:, 0].max()),
                         score=float(score)))
    return LabelResult(key=key, model=MODEL_NAME, prompt=prompt,
                       text="\n".join(b.label for b in boxes), boxes=tuple(boxes))
