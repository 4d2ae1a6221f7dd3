"""Perceptual hashes and the multi-index near-duplicate search (pure functions)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tessera.transforms.mixture import near_dup as ndi
from tessera.transforms.mixture.phash_basis import _dct_matrix, decode_image, hamming, hamming_many
from tessera.transforms.mixture.phash import phash_bytes, phash_pil
from tests.fixtures.mixture_synth import PERTURBATIONS, distinct_image, encode, perturb


def test_hamming_literals():
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(0, (1 << 64) - 1) == 64
    hashes = np.array([0, 1, 3, (1 << 64) - 1], dtype=np.uint64)
    assert hamming_many(0, hashes).tolist() == [0, 1, 2, 64]


def test_dct_matrix_is_orthonormal():
    m = _dct_matrix(32)
    np.testing.assert_allclose(m @ m.T, np.eye(32), atol=1e-12)


def test_flat_image_hash_is_defined_and_stable():
    grey = Image.new("L", (40, 30), 128)
    assert phash_pil(grey) == phash_pil(grey.convert("RGB"))
    assert 0 <= phash_pil(grey) < 1 << 64


def test_undecodable_bytes_raise_value_error():
    for data in (b"", b"not an image", encode(distinct_image(1))[:40]):
        with pytest.raises(ValueError):
            decode_image(data)


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_perturbed_copies_stay_close_distinct_images_stay_far(kind):
    originals = [distinct_image(i) for i in range(20)]
    hashes = [phash_pil(im) for im in originals]
    near = [hamming(h, phash_bytes(perturb(im, kind, seed=i))) for i, (im, h) in enumerate(zip(originals, hashes))]
    assert np.median(near) <= 6, near
    far = [hamming(hashes[i], hashes[j]) for i in range(20) for j in range(i + 1, 20)]
    assert min(far) > 10 and np.mean(far) > 24


def test_chunk_layout_covers_all_bits():
    assert ndi.chunk_layout(9) == [(56, 8)] + [(56 - 7 * (i + 1), 7) for i in range(8)]
    for m in (1, 3, 9, 11, 64):
        layout = ndi.chunk_layout(m)
        assert sum(w for _, w in layout) == 64 and layout[-1][0] == 0
    h = 0x0123456789ABCDEF
    parts = ndi.split(h, ndi.chunk_layout(4))
    assert parts == [0x0123, 0x4567, 0x89AB, 0xCDEF]


def _planted_hashes(n: int, seed: int) -> list[int]:
    """Random hashes plus near copies 0..12 bits away, so every distance band is populated."""
    rng = np.random.default_rng(seed)
    base = [(int(hi) << 32) | int(lo) for hi, lo in rng.integers(0, 2 ** 32, (n, 2), dtype=np.uint64)]
    out = list(base)
    for i in range(0, n, 3):
        flips = rng.choice(64, int(rng.integers(0, 13)), replace=False)
        out.append(base[i] ^ sum(1 << int(b) for b in flips))
    return out


@pytest.mark.parametrize("d,m", [(4, None), (8, None), (10, 4), (8, 9), (3, 2)])
def test_multi_index_equals_brute_force(d, m):
    hashes = _planted_hashes(400, seed=d)
    index = ndi.MultiIndexHash(hashes, d, m=m, brute_force_below=0)  # force the chunk tables
    assert sorted(index.pairs()) == sorted(ndi.brute_force_pairs(hashes, d))
    q = hashes[0] ^ 0b111
    expected = [i for i, h in enumerate(hashes) if hamming(h, q) <= d]
    assert index.query(q) == expected


@pytest.mark.parametrize("d,m", [(8, None), (8, 4), (10, 9), (3, 2)])
def test_vectorized_multi_index_pairs_equal_brute_force(d, m):
    hashes = _planted_hashes(600, seed=d + 1)
    assert ndi.mih_pairs(hashes, d, m=m, max_candidates=500) == sorted(ndi.brute_force_pairs(hashes, d))


def test_small_sets_use_a_brute_force_scan_with_the_same_answer():
    hashes = _planted_hashes(200, seed=5)
    fast = ndi.MultiIndexHash(hashes, 6)
    assert len(fast) < ndi.BRUTE_FORCE_BELOW
    assert sorted(fast.pairs()) == sorted(ndi.MultiIndexHash(hashes, 6, brute_force_below=0).pairs())


def test_flip_masks_and_chunk_choice():
    assert ndi.flip_masks(3, 1) == (0, 1, 2, 4)
    assert len(ndi.flip_masks(16, 2)) == 1 + 16 + 120
    assert ndi.default_chunks(1000, 8) == 9  # small sets: exact 7-bit chunks are cheapest


def test_buckets_report_each_pair_exactly_once():
    d = 8
    hashes = _planted_hashes(300, seed=1)
    buckets: dict = {}
    for i, h in enumerate(hashes):
        for key in ndi.bucket_keys(h, d):
            buckets.setdefault(key, []).append(i)
    found = []
    for (chunk, _), members in buckets.items():
        found += [(members[a], members[b]) for a, b in ndi.pairs_in_bucket([hashes[k] for k in members], chunk, d)]
    assert len(found) == len(set(found))
    assert sorted(found) == sorted(ndi.brute_force_pairs(hashes, d))


def test_nearest_prefers_smallest_distance():
    index = ndi.MultiIndexHash([0b1111, 0b0111, 0b0001], d=3, brute_force_below=0)
    assert index.nearest(0b0011) in ((1, 1), (2, 1))
    assert index.nearest(0b0011) == (1, 1)  # tie broken by the lowest index
    assert index.nearest((1 << 63) | 0xFFFF0000) is None
