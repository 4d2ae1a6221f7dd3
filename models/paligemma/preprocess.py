"""Image preprocessing for PaliGemma: squash-resize to the model resolution, pixels to [-1, 1].

PaliGemma resizes the whole image to R x R (no crop, aspect ratio not kept; boxes are therefore
relative to the original image, see postprocess.py), bilinear with antialiasing as big_vision's
`resize(R)|value_range(-1, 1)`; PIL's bilinear filter widens its support when shrinking, which is
the same antialiasing.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def check_image(image) -> str | None:
    """Why `image` cannot be labelled (None if it can): HxWx3 uint8, non-empty."""
    if not isinstance(image, np.ndarray):
        return f"image is {type(image).__name__}, not a numpy array"
    if image.ndim != 3 or image.shape[2] != 3:
        return f"image shape {image.shape} is not HxWx3"
    if image.dtype != np.uint8:
        return f"image dtype {image.dtype} is not uint8"
    if image.shape[0] == 0 or image.shape[1] == 0:
        return f"image shape {image.shape} is empty"
    return None


def preprocess(image: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 HxWx3 -> float32 [resolution, resolution, 3] in [-1, 1]."""
    if image.shape[:2] != (resolution, resolution):
        image = np.asarray(Image.fromarray(image).resize((resolution, resolution),
                                                         Image.Resampling.BILINEAR))
    return image.astype(np.float32) / 127.5 - 1.0
