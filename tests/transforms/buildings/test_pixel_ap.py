"""Pixel average precision: the ranking quality of a probability map, apart from instances."""
import math

import numpy as np
import pytest

from tessera.transforms.buildings.metrics import pixel_average_precision


def test_a_perfect_ranking_scores_one_and_a_reversed_one_less():
    truth = np.array([[1, 1, 0, 0]])
    assert pixel_average_precision([[0.9, 0.8, 0.2, 0.1]], truth) == 1.0
    # ranks: 0 (neg), 0 (neg), 1 (pos), 1 (pos) -> precision 1/3 at the first positive, 2/4 at the second
    assert pixel_average_precision([[0.1, 0.2, 0.8, 0.9]], truth) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_tied_probabilities_count_as_one_threshold():
    # all tied: one threshold keeps everything, precision = share of building pixels
    assert pixel_average_precision(np.full((2, 2), 0.5), [[1, 0], [0, 0]]) == pytest.approx(0.25)


def test_no_building_pixel_is_nan():
    assert math.isnan(pixel_average_precision([0.3, 0.4], [0, 0]))
