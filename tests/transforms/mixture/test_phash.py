"""The mixture's fast decode + batched pHash: undecodable images still fail, sizes come from the
header, hashes do not depend on the batch, and they agree with a plain reference pHash."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tessera.transforms.mixture import phash_basis as mixture_phash_basis
from tessera.transforms.mixture.phash import decode_grey, phash_bytes, phash_greys, phash_pil
from tests.fixtures.mixture_synth import distinct_image, encode, perturb


def _jpeg(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=90, **options)
    return buf.getvalue()


@pytest.mark.parametrize("size", [(40, 40), (64, 48), (512, 384)])  # 512x384 decodes at 1/8 scale
@pytest.mark.parametrize("kind", ["png", "jpeg", "progressive"])
def test_truncated_images_fail_and_whole_ones_decode(size, kind):
    image = distinct_image(7, max(size)).resize(size)
    data = {"png": lambda: encode(image), "jpeg": lambda: _jpeg(image),
            "progressive": lambda: _jpeg(image, progressive=True)}[kind]()
    grey, (w, h) = decode_grey(data)
    assert grey.shape == (32, 32) and grey.dtype == np.uint8 and (w, h) == size
    for cut in (len(data) - 2, len(data) - 40, len(data) // 2, 30, 5):
        with pytest.raises(ValueError, match="undecodable|empty"):
            decode_grey(data[:cut])


def test_corrupt_and_unknown_bytes_fail_other_formats_fall_back_to_pillow():
    png = bytearray(encode(distinct_image(1, 40)))
    png[len(png) // 2] ^= 0xFF  # zlib stream checksum no longer matches
    for bad in (bytes(png), b"", b"\x89PNG\r\n\x1a\nnot really", b"\xff\xd8\xffgarbage", b"GIF89a..."):
        with pytest.raises(ValueError):
            decode_grey(bad)
    buf = io.BytesIO()
    distinct_image(2, 40).convert("P").save(buf, "GIF")
    grey, size = decode_grey(buf.getvalue())
    assert grey.shape == (32, 32) and size == (40, 40)


def test_batch_hashes_equal_single_hashes():
    greys = [decode_grey(encode(distinct_image(i, 48)))[0] for i in range(40)]
    batch = phash_greys(greys)
    assert batch == [phash_greys([g])[0] for g in greys] == phash_greys(greys[::-1])[::-1]
    assert all(0 <= h < 2 ** 64 for h in batch) and len(set(batch)) == len(batch)


def _reference_phash(image: Image.Image) -> int:
    """The pHash as plainly as it can be written (Pillow, Lanczos, float DCT): an independent
    oracle for the fast OpenCV + integer-basis path."""
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    low = (mixture_phash_basis.DCT_LOW @ np.asarray(grey, dtype=np.float64) @ mixture_phash_basis.DCT_LOW.T)[
        mixture_phash_basis.ZIGZAG_ROWS, mixture_phash_basis.ZIGZAG_COLS]
    return int("".join("1" if v > np.median(low) else "0" for v in low), 2)


def test_same_hash_as_a_plain_reference_and_robust_to_perturbations():
    for seed in range(20):
        image = distinct_image(seed, 64)
        h = phash_bytes(encode(image))
        assert mixture_phash_basis.hamming(h, _reference_phash(image)) <= 6  # decoder/resampler differ
        for kind in ("resize", "jpeg", "brighten"):
            assert mixture_phash_basis.hamming(h, phash_bytes(perturb(image, kind, seed))) <= 10
    a, b = phash_bytes(encode(distinct_image(100, 64))), phash_bytes(encode(distinct_image(101, 64)))
    assert mixture_phash_basis.hamming(a, b) > 10
    thumb = distinct_image(7, 32)  # already 32x32 grey-able: no resampling, so the bits must agree
    assert mixture_phash_basis.hamming(phash_pil(thumb), _reference_phash(thumb)) <= 2


@pytest.mark.parametrize("n,d", [(3, 8), (150, 8), (700, 8), (700, 4), (900, 12)])  # 700+: sub-chunk path
def test_bucket_pairs_match_the_reference(n, d):
    from tessera.transforms.mixture.dedup_stages import bucket_pairs  # pylint: disable=import-outside-toplevel
    from tessera.transforms.mixture.near_dup import chunk_layout, pairs_in_bucket  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(n)
    base = [int(h) for h in rng.integers(0, 2 ** 63, n, dtype=np.int64)]
    hashes = base + [h ^ (1 << int(rng.integers(0, 63))) for h in base[:40]] + base[:3]
    for chunk, (shift, width) in enumerate(chunk_layout(d + 1)):
        members = [(h & ~(((1 << width) - 1) << shift)) | (5 << shift) for h in hashes]  # one bucket
        expected = sorted(pairs_in_bucket(members, chunk, d))
        assert sorted(bucket_pairs(np.array(members, dtype=np.uint64), chunk, d)) == expected
        assert len(expected) >= (3 if chunk == 0 else 0)
