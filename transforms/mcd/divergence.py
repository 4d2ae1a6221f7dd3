"""Atom and compound divergences (Keysers et al. 2020, Sec. 2.1).

F_A(T) is the normalized frequency distribution of atoms over the examples of T; F_C(T) that of
compounds, each example contributing its compound weights. The Chernoff coefficient
C_a(P||Q) = sum_k p_k^a q_k^(1-a) is 1 for equal distributions and 0 for disjoint ones;
D_A = 1 - C_0.5(F_A(train) || F_A(test)) (symmetric: atoms should be equally represented) and
D_C = 1 - C_0.1(F_C(train) || F_C(test)) (a small alpha cares mostly whether a test compound occurs
in train at all, not how often).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

ATOM_ALPHA = 0.5
COMPOUND_ALPHA = 0.1


def distribution(per_example: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Sums per-example {key: weight} maps and normalizes them to a distribution ({} if empty)."""
    total: Counter = Counter()
    for weights in per_example:
        for key, w in weights.items():
            total[key] += w
    mass = sum(total.values())
    if mass <= 0:
        return {}
    return {k: v / mass for k, v in total.items() if v > 0}


def chernoff_coefficient(p: Mapping[str, float], q: Mapping[str, float], alpha: float) -> float:
    """C_alpha(P||Q) = sum_k p_k^alpha q_k^(1-alpha) over keys present in both."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    small, large = (p, q) if len(p) <= len(q) else (q, p)
    total = 0.0
    for key in small:
        if key in large:
            total += p[key] ** alpha * q[key] ** (1.0 - alpha)
    return total


def atom_divergence(train: Iterable[Mapping[str, float]], test: Iterable[Mapping[str, float]]) -> float:
    """D_A between two sets of examples given as per-example atom counts."""
    return 1.0 - chernoff_coefficient(distribution(train), distribution(test), ATOM_ALPHA)


def compound_divergence(train: Iterable[Mapping[str, float]], test: Iterable[Mapping[str, float]]) -> float:
    """D_C between two sets of examples given as per-example compound weights."""
    return 1.0 - chernoff_coefficient(distribution(train), distribution(test), COMPOUND_ALPHA)


def split_divergences(atoms: list[Mapping[str, float]], compounds: list[Mapping[str, float]],
                      train_idxs: Iterable[int], test_idxs: Iterable[int]) -> dict[str, float]:
    """D_A and D_C between two index sets of one data set."""
    train_idxs, test_idxs = list(train_idxs), list(test_idxs)
    return {
        "atom_divergence": atom_divergence([atoms[i] for i in train_idxs], [atoms[i] for i in test_idxs]),
        "compound_divergence": compound_divergence([compounds[i] for i in train_idxs],
                                                   [compounds[i] for i in test_idxs]),
    }
