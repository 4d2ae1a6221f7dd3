"""Decode untrusted image bytes into RGB arrays, and size buckets for fixed-shape batching.

Pure functions (no Beam): every failure is an `ImageDecodeError` with a short stable `reason`
("empty", "undecodable", "truncated", "decompression_bomb") that the pipeline turns into a dead
letter and a counter. Pixel limits are checked from the header, before any pixel is decoded, so a
bomb never reaches memory; Pillow's own `DecompressionBombError` is a second line of defence.
"""
from __future__ import annotations

import bisect
import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 64_000_000  # ~8000x8000: larger is refused as a probable decompression bomb
BUCKET_SIDES = (64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)
_ROTATING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class ImageDecodeError(ValueError):
    """Why an image could not be decoded; `reason` is the dead-letter/counter token."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError("decompression_bomb", str(e)) from e
    except Image.UnidentifiedImageError as e:
        raise ImageDecodeError("undecodable", "not a recognised image format") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageDecodeError("undecodable", f"{type(e).__name__}: {e}") from e
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError("undecodable", f"bad size {width}x{height}")
    if width * height > max_pixels:
        raise ImageDecodeError("decompression_bomb",
                               f"{width}x{height} = {width * height} px > limit {max_pixels}")
    return img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except (OSError, ValueError, TypeError, SyntaxError):
        return 1  # unreadable EXIF is not worth dropping the image for


def probe_size(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) after EXIF rotation, read from the header only (cheap; no pixel decode).

    Raises:
        ImageDecodeError: empty, unrecognised, or larger than `max_pixels`.
    """
    img = _open(data, max_pixels)
    width, height = img.size
    if _orientation(img) in _ROTATING_ORIENTATIONS:
        width, height = height, width
    return height, width


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # High bit depth (16-bit TIFF, float): stretch to 8 bits rather than clip at 255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        img = Image.fromarray(np.rint(np.nan_to_num(scaled)).astype(np.uint8), mode="L")
        return img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white (the usual page colour) instead of undefined RGB.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes to an HxWx3 uint8 RGB array, EXIF orientation applied (first frame only).

    Raises:
        ImageDecodeError: with reason empty, undecodable, truncated or decompression_bomb.
    """
    img = _open(data, max_pixels)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
        arr = np.asarray(rgb, dtype=np.uint8)
    except Image.DecompressionBombError as e:
        raise ImageDecodeError("decompression_bomb", str(e)) from e
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        message = f"{type(e).__name__}: {e}"
        truncated = "truncat" in message.lower() or isinstance(e, EOFError)
        reason = "truncated" if truncated else "undecodable"
        raise ImageDecodeError(reason, message) from e
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ImageDecodeError("undecodable", f"unexpected decoded shape {arr.shape}")
    return np.ascontiguousarray(arr)


def bucket_side(n: int, sides: tuple[int, ...] = BUCKET_SIDES) -> int:
    """Smallest ladder side >= n (the largest side for anything bigger)."""
    i = bisect.bisect_left(sides, n)
    return sides[min(i, len(sides) - 1)]


def size_bucket(height: int, width: int, sides: tuple[int, ...] = BUCKET_SIDES) -> str:
    """Batching bucket "HxW": each side rounded up the ladder, so a batch pads to one shape."""
    return f"{bucket_side(height, sides)}x{bucket_side(width, sides)}"
