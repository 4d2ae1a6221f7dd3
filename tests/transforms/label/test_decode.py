"""Decoding untrusted image bytes: EXIF orientation, RGB, bombs, truncation, size buckets."""
import io

import numpy as np
import pytest
from PIL import Image

from tessera.transforms.label import decode as d


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _marked(width=40, height=20) -> Image.Image:
    """Red canvas with a blue top-left corner, so rotations are visible."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[...] = (255, 0, 0)
    arr[:5, :5] = (0, 0, 255)
    return Image.fromarray(arr)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "BMP"])
def test_decodes_formats_to_rgb_uint8(fmt):
    out = d.decode_image(_encode(_marked(), fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    assert out.shape == (20, 40, 3) and out.dtype == np.uint8
    assert out[10, 30, 0] > 200 and out[10, 30, 2] < 60  # red stays red (no BGR mix-up)


def test_exif_orientation_applied_and_probe_agrees():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _encode(_marked(), "JPEG", exif=exif, quality=95)
    out = d.decode_image(data)
    assert out.shape == (40, 20, 3)
    assert d.probe_size(data) == (40, 20)
    # Orientation 6: the stored top-left corner ends up top-right.
    assert out[1, 18, 2] > 150 and out[1, 1, 2] < 100


def test_grey_palette_alpha_and_16bit_become_rgb():
    grey = Image.fromarray(np.full((8, 8), 128, np.uint8))  # mode L (Pillow infers modes from dtypes)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent -> white background
    pal = _marked().convert("P")
    deep = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # mode I;16
    assert (grey.mode, deep.mode) == ("L", "I;16")
    assert (d.decode_image(_encode(grey, "PNG")) == 128).all()
    assert (d.decode_image(_encode(rgba, "PNG")) == 255).all()
    assert d.decode_image(_encode(pal, "PNG")).shape == (20, 40, 3)
    out = d.decode_image(_encode(deep, "PNG"))
    assert out.shape == (8, 8, 3) and out.min() == 0 and out.max() == 255


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"this is not an image at all", "undecodable"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "undecodable"),
])
def test_bad_bytes_have_reasons(data, reason):
    with pytest.raises(d.ImageDecodeError) as e:
        d.decode_image(data)
    assert e.value.reason == reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_truncated(fmt):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    with pytest.raises(d.ImageDecodeError) as e:
        d.decode_image(data[: len(data) // 2])
    assert e.value.reason == "truncated"


def test_decompression_bomb_refused_from_header():
    data = _encode(Image.new("L", (3000, 3000)), "PNG")  # tiny file, 9 Mpx when decoded
    with pytest.raises(d.ImageDecodeError) as e:
        d.decode_image(data, max_pixels=1_000_000)
    assert e.value.reason == "decompression_bomb"
    with pytest.raises(d.ImageDecodeError):
        d.probe_size(data, max_pixels=1_000_000)
    assert d.probe_size(data) == (3000, 3000)


def test_size_buckets():
    assert d.bucket_side(1) == 64 and d.bucket_side(64) == 64 and d.bucket_side(65) == 128
    assert d.bucket_side(10**6) == d.BUCKET_SIDES[-1]
    assert d.size_bucket(48, 300) == "64x512"
    assert d.size_bucket(48, 300) == d.size_bucket(60, 500)
