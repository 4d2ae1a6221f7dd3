"""Chernoff coefficient and the atom / compound divergences, on literal distributions."""
import math

import pytest

from tessera.transforms.mcd import divergence as dv


def test_distribution_sums_and_normalizes():
    dist = dv.distribution([{"a": 1, "b": 1}, {"a": 2}])
    assert dist == pytest.approx({"a": 0.75, "b": 0.25})
    assert dv.distribution([]) == {}


def test_chernoff_coefficient_by_hand():
    p = {"a": 0.5, "b": 0.5}
    q = {"a": 0.25, "b": 0.25, "c": 0.5}
    expected = 0.5 ** 0.1 * 0.25 ** 0.9 * 2
    assert dv.chernoff_coefficient(p, q, 0.1) == pytest.approx(expected)
    # alpha = 0.5 is the Bhattacharyya coefficient, symmetric
    assert dv.chernoff_coefficient(p, q, 0.5) == pytest.approx(dv.chernoff_coefficient(q, p, 0.5))
    assert dv.chernoff_coefficient(p, q, 0.5) == pytest.approx(2 * math.sqrt(0.125))


def test_identical_and_disjoint():
    p = {"a": 0.2, "b": 0.8}
    assert dv.chernoff_coefficient(p, p, 0.1) == pytest.approx(1.0)
    assert dv.chernoff_coefficient(p, {"z": 1.0}, 0.1) == 0.0


def test_bad_alpha():
    with pytest.raises(ValueError):
        dv.chernoff_coefficient({"a": 1.0}, {"a": 1.0}, 1.0)


def test_divergences_use_the_paper_alphas():
    train = [{"x": 1.0}, {"y": 1.0}]
    test = [{"x": 1.0}]
    # F(train) = {x: .5, y: .5}, F(test) = {x: 1}
    assert dv.atom_divergence(train, test) == pytest.approx(1 - 0.5 ** 0.5)
    assert dv.compound_divergence(train, test) == pytest.approx(1 - 0.5 ** 0.1)
    # compound divergence is the asymmetric one: test compounds missing from train count most
    assert dv.compound_divergence(test, train) == pytest.approx(1 - 0.5 ** 0.9)


def test_split_divergences_by_index():
    atoms = [{"a": 1}, {"a": 1}, {"b": 1}]
    comps = [{"g": 1.0}, {"g": 0.5}, {"h": 1.0}]
    out = dv.split_divergences(atoms, comps, [0], [1])
    assert out == {"atom_divergence": pytest.approx(0.0), "compound_divergence": pytest.approx(0.0)}
    out = dv.split_divergences(atoms, comps, [0], [2])
    assert out == {"atom_divergence": pytest.approx(1.0), "compound_divergence": pytest.approx(1.0)}
