"""Probabilities -> instances -> owned polygons, on literal probability maps."""
from __future__ import annotations

import numpy as np
import pytest

from tessera.transforms.buildings.polygons import label_instances, window_instances

T = (0.5, 0.0, 1000.0, 0.0, -0.5, 2000.0)  # 0.5 m pixels, pixel (0, 0) corner at (1000, 2000)


def _touching_pair():
    p = np.zeros((12, 24), np.float32)
    p[2:8, 2:10] = 0.9
    p[2:8, 10] = 0.6  # the gap the model is unsure about: above threshold, below the cores
    p[2:8, 11:20] = 0.95
    return p


def test_touching_buildings_are_separated_at_the_probability_saddle():
    labels, n = label_instances(_touching_pair(), threshold=0.5, core_threshold=0.8)
    assert n == 2
    assert set(np.unique(labels[2:8, 2:10])) == {1} and set(np.unique(labels[2:8, 11:20])) == {2}
    assert labels[2:8, 10].min() > 0  # the saddle column is assigned, not dropped


def test_small_cores_do_not_cut_slivers_off_a_building():
    p = np.full((10, 20), 0.9, np.float32)
    p[:, 15] = 0.7             # a confidence dip inside one roof ...
    labels, n = label_instances(p, core_threshold=0.8)
    assert n == 2              # ... cuts off a 10 x 4 sliver when every core is a marker
    labels, n = label_instances(p, core_threshold=0.8, min_core_px=64)
    assert n == 1 and (labels > 0).sum() == 200


def test_component_without_core_is_one_instance_and_small_ones_drop():
    p = np.zeros((10, 10), np.float32)
    p[1:4, 1:4] = 0.6   # 9 px, no core
    p[7, 7] = 0.99      # 1 px
    labels, n = label_instances(p, min_area_px=4)
    assert n == 1 and (labels > 0).sum() == 9


def test_nodata_pixels_are_never_building():
    p = np.full((6, 6), 0.9, np.float32)
    valid = np.ones((6, 6), bool)
    valid[:, 3:] = False
    labels, n = label_instances(p, valid)
    assert n == 1 and (labels > 0).sum() == 18


def test_confidence_area_and_polygon_in_crs_units():
    out = window_instances(_touching_pair(), None, transform=T, core=(0, 0, 12, 24), min_area_px=4,
                           simplify_px=0.0)
    assert len(out) == 2
    left, right = sorted(out, key=lambda o: o["centroid_px"][1])
    assert left["area_px"] + right["area_px"] == 6 * 18
    # The left instance holds the 0.9 block plus some of the 0.6 saddle column: mean in between.
    assert 0.6 < left["confidence"] <= 0.9
    assert right["confidence"] == pytest.approx(0.95, abs=0.05)
    assert sum(o["geometry"].area for o in out) == pytest.approx(6 * 18 * 0.25)
    minx, miny, maxx, maxy = left["geometry"].bounds
    assert (minx, maxy) == (1001.0, 1999.0)  # col 2 -> x = 1000 + 2 * 0.5; row 2 -> y = 2000 - 1


def test_only_instances_with_centroid_in_core_are_returned():
    p = np.zeros((16, 16), np.float32)
    p[2:6, 2:6] = 0.9      # centroid (4, 4): inside core rows/cols [4, 12) -> owned
    p[10:14, 12:16] = 0.9  # centroid (12, 14): outside -> another window's
    counts = {}
    out = window_instances(p, None, transform=T, core=(4, 4, 12, 12), min_area_px=1,
                           count=lambda k, n=1: counts.__setitem__(k, counts.get(k, 0) + n))
    assert len(out) == 1 and out[0]["centroid_px"] == (4.0, 4.0)
    assert counts["instances_found"] == 2 and counts["instances_not_owned"] == 1
    assert out[0]["truncated"] is False


def test_instance_touching_window_edge_is_flagged_truncated():
    p = np.zeros((8, 8), np.float32)
    p[0:3, 3:6] = 0.9
    out = window_instances(p, None, transform=T, core=(0, 0, 8, 8), min_area_px=1)
    assert len(out) == 1 and out[0]["truncated"] is True


def test_min_confidence_filters():
    p = np.zeros((8, 8), np.float32)
    p[1:4, 1:4] = 0.55
    p[5:8, 5:8] = 0.95
    out = window_instances(p, None, transform=T, core=(0, 0, 8, 8), min_area_px=1, min_confidence=0.7)
    assert [round(o["confidence"], 2) for o in out] == [0.95]


def test_empty_map_gives_nothing():
    assert window_instances(np.zeros((8, 8), np.float32), None, transform=T, core=(0, 0, 8, 8)) == []
