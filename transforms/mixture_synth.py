"""Generated image-text data for the mixture tests and benchmarks (no downloads).

Distinct images are random compositions of gradients, shapes and noise textures, each drawn from
a seed, so their perceptual hashes spread over the 64-bit space the way real photos do. The
perturbations are the ones decontamination must see through: resize, low-quality JPEG, slight
crop, brightening.
"""
from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance


def distinct_image(seed: int, size: int = 64) -> Image.Image:
    """An RGB image determined by `seed`: random low-frequency waves, shapes, a noise texture.

    The waves give every image its own large-scale layout (a single linear gradient would make
    many images look alike to a low-frequency hash, which real photo collections do not).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.zeros((size, size, 3)) + rng.uniform(60, 190, 3)
    for _ in range(4):
        fx, fy = rng.uniform(-2.5, 2.5, 2)
        phase = rng.uniform(0, 2 * np.pi)
        amplitude = rng.uniform(-45, 45, 3)
        base += amplitude * np.cos(2 * np.pi * (fx * xx + fy * yy) + phase)[..., None]
    base += rng.normal(0, 10, base.shape)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * size
        w, h = rng.uniform(0.15, 0.6, 2) * size
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = [x0, y0, x0 + w, y0 + h]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    return image


def encode(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    if fmt.upper() == "JPEG":
        image.convert("RGB").save(buf, "JPEG", quality=quality)
    else:
        image.save(buf, fmt, optimize=False)
    return buf.getvalue()


def perturb(image: Image.Image, kind: str, seed: int = 0) -> bytes:
    """Encoded bytes of `image` after one perturbation.

    resize: 0.5-2x; jpeg: quality 10-25; crop: 0-4% off each side; brighten: +5-25%.
    """
    rng = np.random.default_rng(seed)
    w, h = image.size
    if kind == "resize":
        scale = rng.uniform(0.5, 2.0)
        return encode(image.resize((max(8, int(w * scale)), max(8, int(h * scale))),
                                   Image.Resampling.BILINEAR))
    if kind == "jpeg":
        return encode(image, "JPEG", quality=int(rng.integers(10, 26)))
    if kind == "crop":
        f = rng.uniform(0.0, 0.04, 4)  # up to 4% off each side, independently
        box = (int(f[0] * w), int(f[1] * h), w - int(f[2] * w), h - int(f[3] * h))
        return encode(image.crop(box))
    if kind == "brighten":
        return encode(ImageEnhance.Brightness(image).enhance(rng.uniform(1.05, 1.25)))
    raise ValueError(f"unknown perturbation {kind!r}")


PERTURBATIONS = ("resize", "jpeg", "crop", "brighten")


def write_jsonl(path: str, rows: list[dict]) -> None:
    """Rows with `image` bytes become base64 strings (the JSONL source layout)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            row = dict(row)
            if isinstance(row.get("image"), bytes):
                row["image"] = base64.b64encode(row["image"]).decode("ascii")
            f.write(json.dumps(row, sort_keys=True) + "\n")


def write_parquet(path: str, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    columns = sorted({k for r in rows for k in r})
    types = {"image": pa.binary()}
    table = pa.table({c: pa.array([r.get(c) for r in rows], type=types.get(c, pa.string()))
                      for c in columns})
    pq.write_table(table, path)
