"""Atoms, compounds (rooted connected sub-trees) and compound weights on literal trees."""
import pytest

from tessera.transforms.mcd import compounds as cmp

TREE = ["A", ["B", "C"], "D"]  # A has children B (with child C) and D


def test_flatten_and_atoms():
    tree = cmp.flatten(TREE)
    assert tree.labels == ["A", "B", "C", "D"]
    assert tree.children == [[1, 3], [2], [], []]
    assert tree.parent == [-1, 0, 1, 0]
    assert cmp.atoms(TREE) == ["A", "B", "C", "D"]
    assert cmp.atom_counts(["S", ["V", "U"], ["V", "U"]]) == {"S": 1, "V": 2, "U": 2}


@pytest.mark.parametrize("bad", [[], [3], ["A", 5], "", ["A(x)"], {"A": 1}])
def test_flatten_rejects_non_derivations(bad):
    with pytest.raises(ValueError):
        cmp.flatten(bad)


def test_compounds_keep_argument_positions():
    occs = cmp.occurrences(TREE, max_size=3)
    assert sorted(o.compound for o in occs) == sorted(
        ["A(B,_)", "A(_,D)", "A(B(C),_)", "A(B,D)", "B(C)"])
    by_name = {o.compound: o.extensions for o in occs}
    assert by_name["A(B,_)"] == {"A(B(C),_)", "A(B,D)"}
    assert by_name["B(C)"] == {"A(B(C),_)"}  # upward extension through the parent
    assert by_name["A(B,D)"] == frozenset()  # already max_size: no super-compound
    assert len(cmp.occurrences(TREE, max_size=4)) == 6  # + A(B(C),D)


def test_weights_single_example_only_maximal_compounds_count():
    (weights,) = cmp.weighted_compounds_of([TREE], max_size=3)
    # every smaller compound always occurs inside a bigger one, so it carries no weight
    assert weights == {"A(B(C),_)": 1.0, "A(B,D)": 1.0}


def test_weights_follow_conditional_probabilities():
    data = [["S", ["V", "jump"]], ["S", ["V", "walk"]], ["T", ["V", "jump"]]]
    weights = cmp.weighted_compounds_of(data, max_size=3)
    # V(jump) occurs twice: inside S(V(jump)) once and T(V(jump)) once -> P = 1/2, weight 1/2
    assert weights[0]["V(jump)"] == pytest.approx(0.5)
    # S(V) occurs twice, extended to S(V(jump)) and S(V(walk)) once each -> weight 1/2
    assert weights[0]["S(V)"] == pytest.approx(0.5)
    # V(walk) only ever occurs inside S(V(walk)) -> weight 0, left out
    assert "V(walk)" not in weights[1]
    assert weights[2]["T(V(jump))"] == 1.0


def test_weight_is_max_over_occurrences():
    # V(x) twice in one example: under P (always P(V(x)) elsewhere too) and under Q (unique)
    data = [["R", ["P", ["V", "x"]], ["Q", ["V", "x"]]], ["P", ["V", "x"]]]
    occs = cmp.occurrences(data[0], 3)
    counts = cmp.occurrence_counts(occs) + cmp.occurrence_counts(cmp.occurrences(data[1], 3))
    probs = cmp.max_extension_probability(counts)
    # V(x): 3 occurrences; P(V(x)) extends 2 of them, Q(V(x)) 1
    assert probs["V(x)"]["P(V(x))"] == pytest.approx(2 / 3)
    weights = cmp.compound_weights(occs, probs)
    assert weights["V(x)"] == pytest.approx(1 - 1 / 3)  # the occurrence under Q is the less predictable
