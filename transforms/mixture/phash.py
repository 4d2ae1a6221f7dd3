"""Fast image checks and batched pHashes for the mixture pipeline.

Why a second hash module next to `image_hash`: the mixture touches every record once, and for
small images Pillow's per-image Python overhead (plugin open, chunk loop, convert, resize) cost
more than a plain Beam copy of the whole record. Here PNG and JPEG go through one OpenCV call that
decodes straight to grey, JPEGs at 1/2..1/8 scale in the DCT domain when they are large (libjpeg
still reads the whole entropy-coded stream, so truncated files still fail), and width/height come
from the file header so the size filters see the original size. Other formats fall back to
Pillow. The pHash is the same 64 zigzag DCT coefficients and bit order as `image_hash`, computed
for a whole batch at once with an integer-valued DCT basis: every product and sum is an exact
integer in float64, so a hash never depends on which batch (or BLAS kernel) computed it.
"""
from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from PIL import Image

from tessera.transforms.mixture.phash_basis import DCT_LOW, ZIGZAG_COLS, ZIGZAG_ROWS, HASH_BITS, decode_image

THUMB = 32
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
# 12-bit integer DCT basis: |sum| <= 2^12 * 255 * 32 * 2^12 * 32 < 2^53, so float64 is exact.
_DCT_INT = np.round(DCT_LOW * 4096.0)
_DCT_INT_T = np.ascontiguousarray(_DCT_INT.T)
_REDUCED = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
            4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)  # Pillow's decompression-bomb limit
# SOF markers (baseline, extended, progressive, lossless, arithmetic): C0-CF except C4, C8, CC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment; ValueError if the header is cut or malformed."""
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise ValueError("undecodable image: bad JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _SOF:
            if pos + 9 > n:
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xDA:
            break
        pos += 2 + length
    raise ValueError("undecodable image: no JPEG frame header")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ValueError("undecodable image: no PNG IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _cv_decode(data: bytes, flag: int) -> np.ndarray:
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if grey is None:
        raise ValueError("undecodable image: truncated or corrupt data")
    return grey


def decode_grey(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """Encoded bytes -> (32x32 uint8 grey thumbnail, original (width, height)).

    The whole file is decoded (at reduced scale for large JPEGs), so truncated or corrupt images
    raise here. Raises ValueError if undecodable.
    """
    if not data:
        raise ValueError("empty image bytes")
    if data.startswith(_PNG) or data.startswith(_JPEG):
        is_png = data.startswith(_PNG)
        width, height = _png_size(data) if is_png else _jpeg_size(data)
        if width <= 0 or height <= 0 or width * height > _MAX_PIXELS:
            raise ValueError(f"undecodable image: bad size {width}x{height}")
        scale = 1
        if not is_png:  # largest DCT scaling that keeps both sides >= the thumbnail
            while scale < 8 and min(width, height) >= 2 * scale * THUMB:
                scale *= 2
        grey = _cv_decode(data, _REDUCED[scale])
        expected = (-(-height // scale), -(-width // scale))
        if grey.shape != expected:
            raise ValueError(f"undecodable image: decoded {grey.shape}, header says {expected}")
    else:
        image = decode_image(data)
        width, height = image.size
        grey = np.asarray(image if image.mode == "L" else image.convert("RGB").convert("L"))
    if grey.shape != (THUMB, THUMB):
        grey = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return grey, (width, height)


def phash_greys(greys: list[np.ndarray]) -> list[int]:
    """64-bit DCT pHashes (bit 63 first) of 32x32 uint8 thumbnails, vectorized over the batch."""
    if not greys:
        return []
    pixels = np.stack(greys).astype(np.float64)
    low = np.matmul(np.matmul(_DCT_INT, pixels), _DCT_INT_T)[:, ZIGZAG_ROWS, ZIGZAG_COLS]
    ordered = np.sort(low, axis=1)
    median = (ordered[:, HASH_BITS // 2 - 1] + ordered[:, HASH_BITS // 2]) / 2
    packed = np.packbits(low > median[:, None], axis=1)  # big-endian: bit 63 first
    return np.ascontiguousarray(packed).view(">u8").ravel().tolist()


def phash_bytes(data: bytes) -> int:
    """pHash of encoded image bytes (the mixture's hash). Raises ValueError if undecodable."""
    return phash_greys([decode_grey(data)[0]])[0]


def phash_pil(image: Image.Image) -> int:
    """The mixture's pHash of an in-memory image (as if it were PNG-encoded), for benchmarks."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return phash_bytes(buf.getvalue())
