"""Greedy MCD: incremental scores equal full recomputation; the split meets its constraints."""
import numpy as np
import pytest

from tessera.transforms.mcd import divergence as dv
from tessera.transforms.mcd import greedy as mg

ATOMS = [{"a": 1, "b": 1}, {"a": 2}, {"b": 1, "c": 1}, {"a": 1, "c": 2}, {"c": 1}, {"a": 1, "b": 2}]
COMPS = [{"ab": 1.0, "x": 0.5}, {"aa": 1.0}, {"bc": 0.7}, {"ac": 1.0, "x": 0.25}, {"cc": 1.0},
         {"ab": 0.5, "bb": 1.0}]


def _state(data, train, test):
    state = mg.DivergenceState(data)
    for i in train:
        state.apply(i, mg.TRAIN, +1)
    for i in test:
        state.apply(i, mg.TEST, +1)
    return state


def test_incremental_scores_equal_full_recomputation():
    data, _, _ = mg.encode(ATOMS, COMPS)
    train, test = {0, 1}, {2}
    state = _state(data, train, test)
    d_a, d_c = state.divergences()
    ref = dv.split_divergences(ATOMS, COMPS, train, test)
    assert d_a == pytest.approx(ref["atom_divergence"])
    assert d_c == pytest.approx(ref["compound_divergence"])
    rows = np.array([3, 4, 5])
    for side, members in ((mg.TRAIN, train), (mg.TEST, test)):
        inc = state.score_moves(rows, side, +1)
        naive = mg.naive_score_moves(data, [train, test], rows, side, +1)
        np.testing.assert_allclose(inc[0], naive[0], atol=1e-12)
        np.testing.assert_allclose(inc[1], naive[1], atol=1e-12)
        for j, row in enumerate(rows):  # and against the dict-based definition
            new = set(members) | {int(row)}
            tr, te = (new, test) if side == mg.TRAIN else (train, new)
            ref = dv.split_divergences(ATOMS, COMPS, tr, te)
            assert inc[1][j] == pytest.approx(ref["compound_divergence"])
            assert inc[0][j] == pytest.approx(ref["atom_divergence"])
    full = mg.full_vector_score_moves(state, rows, mg.TEST, +1)
    np.testing.assert_allclose(full, state.score_moves(rows, mg.TEST, +1), atol=1e-12)
    # removals too
    inc = state.score_moves(np.array([0, 1]), mg.TRAIN, -1)
    naive = mg.naive_score_moves(data, [train, test], np.array([0, 1]), mg.TRAIN, -1)
    np.testing.assert_allclose(inc, naive, atol=1e-12)


def test_apply_then_remove_restores_state():
    data, _, _ = mg.encode(ATOMS, COMPS)
    state = _state(data, [0, 1], [2])
    before = state.divergences()
    state.apply(5, mg.TEST, +1)
    state.apply(5, mg.TEST, -1)
    assert state.divergences() == pytest.approx(before)


def _toy_corpus(n=400, seed=0):
    """Two-slot examples: atoms are the slot values, compounds the (slot1, slot2) pairs."""
    rng = np.random.default_rng(seed)
    atoms, comps = [], []
    for _ in range(n):
        a, b = rng.integers(0, 6, size=2)
        atoms.append({f"L{a}": 1, f"R{b}": 1})
        comps.append({f"L{a}R{b}": 1.0, f"L{a}": 0.2, f"R{b}": 0.2})
    return atoms, comps


def test_greedy_reaches_high_divergence_within_atom_limit_and_is_seeded():
    atoms, comps = _toy_corpus()
    data, _, _ = mg.encode(atoms, comps)
    cfg = mg.GreedyConfig(train_size=160, test_size=40, max_atom_divergence=0.05, seed=0,
                          candidates_per_step=128, record_every=10, swap_steps=200)
    result = mg.greedy_split(data, cfg)
    assert len(result.train) == 160 and len(result.test) == 40
    assert not set(result.train) & set(result.test)
    ref = dv.split_divergences(atoms, comps, result.train, result.test)
    assert result.compound_divergence == pytest.approx(ref["compound_divergence"])
    assert ref["atom_divergence"] <= 0.05
    random_train, random_test = mg.random_split(len(atoms), 160, 40, seed=0)
    random_dc = dv.split_divergences(atoms, comps, random_train, random_test)["compound_divergence"]
    assert ref["compound_divergence"] > random_dc + 0.3
    assert result.trajectory and result.trajectory[-1]["train"] == 160
    again = mg.greedy_split(data, cfg)
    assert again.train == result.train and again.test == result.test  # keyed randomness
    other = mg.greedy_split(data, mg.GreedyConfig(**{**cfg.__dict__, "seed": 1}))
    assert other.test != result.test


def test_target_compound_divergence_is_approached():
    atoms, comps = _toy_corpus()
    data, _, _ = mg.encode(atoms, comps)
    cfg = mg.GreedyConfig(train_size=160, test_size=40, max_atom_divergence=0.05,
                          target_compound_divergence=0.2, candidates_per_step=128, swap_steps=200)
    result = mg.greedy_split(data, cfg)
    assert abs(result.compound_divergence - 0.2) < 0.05


def test_impossible_sizes_raise():
    data, _, _ = mg.encode(ATOMS, COMPS)
    with pytest.raises(ValueError, match="exceed"):
        mg.greedy_split(data, mg.GreedyConfig(train_size=5, test_size=2))
    with pytest.raises(ValueError, match="exceed"):
        mg.random_split(6, 5, 2, seed=0)


def test_scores_with_empty_rows_equal_full_recomputation():
    atoms = ATOMS + [{"a": 1}, {}]
    comps = COMPS + [{}, {"ab": 0.5}]  # an example without compounds, one without atoms
    data, _, _ = mg.encode(atoms, comps)
    train, test = {0, 6}, {2, 7}
    state = _state(data, train, test)
    for side, sign, rows in ((mg.TRAIN, +1, [7, 3, 1]), (mg.TEST, +1, [6, 5]), (mg.TRAIN, -1, [6, 0]),
                             (mg.TEST, -1, [7])):
        inc = state.score_moves(np.array(rows), side, sign)
        naive = mg.naive_score_moves(data, [train, test], np.array(rows), side, sign)
        np.testing.assert_allclose(inc, naive, atol=1e-12)


def _score(result, cfg):
    over = max(result.atom_divergence - cfg.max_atom_divergence * cfg.atom_margin, 0.0)
    return -(1.0 - result.compound_divergence) - cfg.atom_penalty * over


def test_swap_search_keeps_atom_bound_and_never_lowers_compound_divergence():
    atoms, comps = _toy_corpus(n=600, seed=3)
    data, _, _ = mg.encode(atoms, comps)
    base = mg.GreedyConfig(train_size=200, test_size=50, max_atom_divergence=0.05, seed=0,
                           candidates_per_step=16, removal_candidates=16, restarts=1, swap_steps=0)
    greedy = mg.greedy_split(data, base)
    swapped = mg.greedy_split(data, mg.GreedyConfig(**{**base.__dict__, "swap_steps": 400}))
    assert swapped.swaps > 0  # the search did something...
    assert (swapped.train, swapped.test) != (greedy.train, greedy.test)
    bound = max(base.max_atom_divergence * base.atom_margin, greedy.atom_divergence)
    assert swapped.atom_divergence <= bound + 1e-12  # ...without breaking the atom limit
    assert swapped.compound_divergence >= greedy.compound_divergence - 1e-12
    assert len(swapped.train) == 200 and len(swapped.test) == 50
    assert not set(swapped.train) & set(swapped.test)
    ref = dv.split_divergences(atoms, comps, swapped.train, swapped.test)
    assert swapped.compound_divergence == pytest.approx(ref["compound_divergence"])
    assert swapped.atom_divergence == pytest.approx(ref["atom_divergence"])


def test_restarts_keep_the_best_run():
    atoms, comps = _toy_corpus(n=400, seed=4)
    data, _, _ = mg.encode(atoms, comps)
    one = mg.GreedyConfig(train_size=150, test_size=40, max_atom_divergence=0.05, seed=2,
                          candidates_per_step=8, removal_candidates=8, restarts=1, swap_steps=0)
    single = mg.greedy_split(data, one)
    best = mg.greedy_split(data, mg.GreedyConfig(**{**one.__dict__, "restarts": 4}))
    assert _score(best, one) >= _score(single, one)
    assert best.restart in range(4)
    if best.restart == 0:
        assert best.train == single.train


def test_swap_search_with_no_unused_examples_leaves_the_greedy_split():
    atoms, comps = _toy_corpus(n=60, seed=5)
    data, _, _ = mg.encode(atoms, comps)
    cfg = mg.GreedyConfig(train_size=48, test_size=12, max_atom_divergence=0.2, candidates_per_step=8,
                          remove_every=0, restarts=1, swap_steps=50)
    result = mg.greedy_split(data, cfg)
    assert result.swaps == 0 and sorted(result.train + result.test) == list(range(60))
