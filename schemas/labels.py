"""Records shared by the labelling pipeline and every labelling model handler."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa


@dataclasses.dataclass(frozen=True)
class Box:
    """A labelled box in pixel coordinates of the decoded (EXIF-rotated) image."""
    label: str
    y_min: float
    x_min: float
    y_max: float
    x_max: float
    score: float | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class LabelRequest:
    """One image to label: `image` is HxWx3 uint8 RGB after decoding."""
    key: str
    image: np.ndarray
    prompt: str = ""


@dataclasses.dataclass(frozen=True)
class LabelResult:
    """One labelled image; `embedding` (L2-normalised image embedding) only when asked for."""
    key: str
    model: str
    prompt: str
    text: str
    boxes: tuple[Box, ...] = ()
    error: str | None = None
    embedding: tuple[float, ...] | None = None

    def to_row(self) -> dict:
        return {
            "key": self.key, "model": self.model, "prompt": self.prompt, "text": self.text,
            "boxes": [dataclasses.asdict(b) for b in self.boxes], "error": self.error,
            "embedding": None if self.embedding is None else list(self.embedding),
        }


BOX_TYPE = pa.struct([
    ("label", pa.string()), ("y_min", pa.float32()), ("x_min", pa.float32()),
    ("y_max", pa.float32()), ("x_max", pa.float32()), ("score", pa.float32()),
])

LABEL_SCHEMA = pa.schema([
    ("key", pa.string()), ("model", pa.string()), ("prompt", pa.string()), ("text", pa.string()),
    ("boxes", pa.list_(BOX_TYPE)), ("error", pa.string()),
    ("embedding", pa.list_(pa.float32())),  # nullable; since schema 1.2.0 (--embeddings)
])
