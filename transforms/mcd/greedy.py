"""Greedy Maximum-Compound-Divergence split construction (Keysers et al. 2020, Sec. 2.3).

Starting from one keyed-random example on each side, the algorithm alternately grows train and
test (whichever is furthest from its target size), each time adding, among a keyed-random sample
of unused candidates, the one that moves (D_A, D_C) best toward the targets: compound divergence
toward `target_compound_divergence` (1.0 = maximize) while atom divergence stays under its limit.
Every `remove_every` steps it also tries removing a member of the side it just grew, when that
improves the score, to escape local optima.

The result of one run depends on its random candidate samples (on SCAN its D_C varies by about
+-0.015), so `restarts` independent runs are made and the best kept; a swap search (remove one,
add one, keep the swap only if the score improves, with the atom bound as a hard constraint) then
polishes it. Everything is keyed by the seed, so a seed always gives the same split.

Scoring is incremental (transforms/mcd_scoring.py): a candidate costs O(its atoms and compounds).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from tessera.transforms.mcd.scoring import (  # noqa: F401  (re-exported: the split's public face)
    TEST, TRAIN, DivergenceState, Rows, SparseExamples, encode, full_vector_score_moves, keyed_rng,
    naive_score_moves)


@dataclass(frozen=True)
class GreedyConfig:
    """Sizes, targets and search effort of one greedy MCD construction."""
    train_size: int
    test_size: int
    max_atom_divergence: float = 0.02
    target_compound_divergence: float | None = None  # None: maximize
    seed: int = 0
    candidates_per_step: int = 256
    remove_every: int = 2
    removal_candidates: int = 256
    atom_penalty: float = 20.0
    atom_margin: float = 0.97  # aim a bit under the limit so dev and test halves keep to it too
    restarts: int = 2  # independent greedy constructions; the best by score is kept
    swap_steps: int = 2000  # local search after the greedy: remove-one-add-one swaps, kept if better
    swap_candidates: int = 512
    record_every: int = 50


class SplitResult(NamedTuple):
    train: list[int]
    test: list[int]
    atom_divergence: float
    compound_divergence: float
    trajectory: list[dict]  # {step, train, test, atom_divergence, compound_divergence}
    steps: int
    removals: int
    seconds: float
    restart: int = 0  # which of the restarts was kept
    swaps: int = 0  # swaps the local search kept


def _score(d_a: np.ndarray, d_c: np.ndarray, cfg: GreedyConfig, atom_bound: float | None = None,
           atom_penalty: float | None = None) -> np.ndarray:
    """Higher is better: closeness of D_C to its target, minus a penalty for D_A over its bound."""
    target = 1.0 if cfg.target_compound_divergence is None else cfg.target_compound_divergence
    bound = cfg.max_atom_divergence * cfg.atom_margin if atom_bound is None else atom_bound
    penalty = cfg.atom_penalty if atom_penalty is None else atom_penalty
    return -np.abs(d_c - target) - penalty * np.maximum(d_a - bound, 0.0)


_HARD_PENALTY = 1e6  # makes the atom bound a constraint: no gain in D_C outweighs it


class _Bag:
    """An index set with O(1) add, remove and uniform sampling (swap-remove array)."""

    def __init__(self, items: Sequence[int], capacity: int):
        self.items = np.zeros(capacity, dtype=np.int64)
        self.pos = {}
        self.n = 0
        for i in items:
            self.add(int(i))

    def add(self, i: int) -> None:
        self.items[self.n] = i
        self.pos[i] = self.n
        self.n += 1

    def remove(self, i: int) -> None:
        at = self.pos.pop(i)
        last = int(self.items[self.n - 1])
        self.n -= 1
        if at != self.n:
            self.items[at] = last
            self.pos[last] = at

    def sample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        if self.n <= k:
            return self.items[:self.n].copy()
        return self.items[rng.integers(0, self.n, size=k)]  # repeats are harmless to an argmax


def _trajectory_point(state: DivergenceState, sides: list[_Bag], step: int) -> dict:
    """One point of the divergence-trajectory plot: sizes and both divergences after `step`."""
    d_atom, d_comp = state.divergences()
    return {"step": step, "train": sides[TRAIN].n, "test": sides[TEST].n,
            "atom_divergence": d_atom, "compound_divergence": d_comp}


def _swap_search(state: DivergenceState, sides: list[_Bag], unused: _Bag, cfg: GreedyConfig,
                 rng: np.random.Generator, trajectory: list[dict], first_step: int) -> int:
    """Local search at fixed sizes, after the greedy: take out of one side the sampled member whose
    removal helps compound divergence most, put in the sampled unused example that then scores
    best, and keep the swap only if the score improved (else put the member back).

    The atom limit is hard here (a swap may never take D_A over the bound, or further over it), so
    the phase never lowers the score and never breaks the atom limit. Returns the swaps kept.
    """
    if unused.n == 0 or min(sides[TRAIN].n, sides[TEST].n) < 2:
        return 0  # nothing to swap in, or a side that a swap would empty
    target = 1.0 if cfg.target_compound_divergence is None else cfg.target_compound_divergence
    bound = max(cfg.max_atom_divergence * cfg.atom_margin, state.divergences()[0])

    def strict(d_a, d_c):
        return _score(np.atleast_1d(d_a), np.atleast_1d(d_c), cfg, bound, _HARD_PENALTY)

    kept = 0
    current = strict(*state.divergences())[0]
    for step in range(cfg.swap_steps):
        side = TEST if step % 2 == 0 else TRAIN
        members = sides[side].sample(rng, cfg.removal_candidates)
        out = int(members[int(np.argmin(np.abs(state.score_moves(members, side, -1)[1] - target)))])
        state.apply(out, side, -1)
        cand = unused.sample(rng, cfg.swap_candidates)
        scores = strict(*state.score_moves(cand, side, +1))
        j = int(np.argmax(scores))
        if scores[j] > current + 1e-12:
            new = int(cand[j])
            sides[side].remove(out)
            unused.add(out)
            unused.remove(new)
            sides[side].add(new)
            state.apply(new, side, +1)
            current = float(scores[j])
            kept += 1
        else:
            state.apply(out, side, +1)
        if (step + 1) % 1000 == 0:
            state.resync()
            current = strict(*state.divergences())[0]
        if (step + 1) % cfg.record_every == 0:
            trajectory.append(_trajectory_point(state, sides, first_step + step + 1))
    return kept


def greedy_split(data: SparseExamples, cfg: GreedyConfig, pool: Sequence[int] | None = None) -> SplitResult:
    """Builds train/test index lists of the configured sizes from `pool` (default: all examples).

    Runs `cfg.restarts` independent greedy constructions (keyed by seed and restart number), keeps
    the best by score, and improves it with `cfg.swap_steps` steps of swap search. A greedy run's
    D_C varies by about +-0.015 with its random candidate samples (on SCAN), so the best of a few
    cheaper runs beats one run with more candidates.

    Raises:
        ValueError: if the sizes cannot be met from the pool.
    """
    start = time.perf_counter()
    pool = np.arange(data.size) if pool is None else np.asarray(pool, dtype=np.int64)
    if cfg.train_size < 1 or cfg.test_size < 1:
        raise ValueError(f"train and test sizes must be >= 1 (got {cfg.train_size}, {cfg.test_size})")
    if cfg.train_size + cfg.test_size > len(pool):
        raise ValueError(f"train {cfg.train_size} + test {cfg.test_size} exceed the pool of {len(pool)}")
    best, best_score = None, -np.inf
    for restart in range(max(cfg.restarts, 1)):
        run = _build_once(data, cfg, pool, restart)
        score = float(_score(*map(np.atleast_1d, run[0].divergences()), cfg)[0])
        if score > best_score:
            best, best_score = (*run, restart), score
    state, sides, unused, rng, trajectory, steps, removals, restart = best
    swaps = _swap_search(state, sides, unused, cfg, rng, trajectory, steps)
    state.resync()
    trajectory.append(_trajectory_point(state, sides, steps + cfg.swap_steps))
    d_atom, d_comp = state.divergences()
    train = sorted(int(i) for i in sides[TRAIN].items[:sides[TRAIN].n])
    test = sorted(int(i) for i in sides[TEST].items[:sides[TEST].n])
    return SplitResult(train, test, d_atom, d_comp, trajectory, steps, removals,
                       time.perf_counter() - start, restart, swaps)


def _build_once(data: SparseExamples, cfg: GreedyConfig, pool: np.ndarray, restart: int):
    """One greedy construction from one keyed random stream; returns its state and history."""
    rng = keyed_rng("mcd-greedy", cfg.seed) if restart == 0 else keyed_rng("mcd-greedy", cfg.seed, restart)
    state = DivergenceState(data)
    unused = _Bag(pool, data.size)
    sides = [_Bag([], data.size), _Bag([], data.size)]
    targets = (cfg.train_size, cfg.test_size)
    for side in (TRAIN, TEST):  # one keyed-random example each, so both distributions exist
        row = int(unused.sample(rng, 1)[0])
        unused.remove(row)
        sides[side].add(row)
        state.apply(row, side, +1)
    trajectory, steps, removals = [], 0, 0
    max_steps = 4 * (cfg.train_size + cfg.test_size)
    while (sides[TRAIN].n < targets[TRAIN] or sides[TEST].n < targets[TEST]) and steps < max_steps:
        steps += 1
        side = TRAIN if sides[TRAIN].n / targets[TRAIN] <= sides[TEST].n / targets[TEST] else TEST
        if sides[side].n >= targets[side]:
            side = 1 - side
        cand = unused.sample(rng, cfg.candidates_per_step)
        d_a, d_c = state.score_moves(cand, side, +1)
        best = int(cand[int(np.argmax(_score(d_a, d_c, cfg)))])
        unused.remove(best)
        sides[side].add(best)
        state.apply(best, side, +1)
        if cfg.remove_every and steps % cfg.remove_every == 0 and sides[side].n > 1:
            current = _score(*map(np.atleast_1d, state.divergences()), cfg)[0]
            members = sides[side].sample(rng, cfg.removal_candidates)
            r_a, r_c = state.score_moves(members, side, -1)
            scores = _score(r_a, r_c, cfg)
            j = int(np.argmax(scores))
            if scores[j] > current + 1e-12:
                row = int(members[j])
                sides[side].remove(row)
                unused.add(row)
                state.apply(row, side, -1)
                removals += 1
        if steps % 1000 == 0:
            state.resync()
        if steps % cfg.record_every == 0:
            trajectory.append(_trajectory_point(state, sides, steps))
    if sides[TRAIN].n < targets[TRAIN] or sides[TEST].n < targets[TEST]:
        raise RuntimeError(f"greedy split stopped after {steps} steps at sizes "
                           f"{sides[TRAIN].n}/{sides[TEST].n}; lower remove_every's effect or the sizes")
    state.resync()
    return state, sides, unused, rng, trajectory, steps, removals


def random_split(n_pool: int, train_size: int, test_size: int, seed: int) -> tuple[list[int], list[int]]:
    """The baseline: a keyed-random train/test of the same sizes (indices into range(n_pool))."""
    if train_size + test_size > n_pool:
        raise ValueError(f"train {train_size} + test {test_size} exceed the pool of {n_pool}")
    order = keyed_rng("random-split", seed).permutation(n_pool)
    return sorted(order[:train_size].tolist()), sorted(order[train_size:train_size + test_size].tolist())


def divide_holdout(atoms: list[dict], train_pos: list[int], hold_pos: list[int], n_dev: int, seed: int,
                   tries: int = 64) -> tuple[list[int], list[int]]:
    """Cuts the hold-out into dev and test by a keyed shuffle, as CFQ does.

    Of `tries` keyed shuffles it keeps the one whose worse atom divergence to train (dev or test)
    is smallest: halving a hold-out adds sampling noise to D_A, and the limit must hold for test.
    All shuffles are exchangeable, so dev and test still follow the same distribution.
    """
    vocab = {k: i for i, k in enumerate(sorted({k for i in hold_pos for k in atoms[i]} |
                                               {k for i in train_pos for k in atoms[i]}))}
    dense = np.zeros((len(hold_pos), len(vocab)))
    for row, i in enumerate(hold_pos):
        for k, v in atoms[i].items():
            dense[row, vocab[k]] = v
    train_vec = np.zeros(len(vocab))
    for i in train_pos:
        for k, v in atoms[i].items():
            train_vec[vocab[k]] += v
    p = train_vec / max(train_vec.sum(), 1e-12)

    def d_a(rows):
        q = dense[rows].sum(axis=0)
        return 1.0 - float(np.sqrt(p * q / max(q.sum(), 1e-12)).sum())

    best, best_order = None, None
    for t in range(tries):
        order = keyed_rng("dev-test", seed, t).permutation(len(hold_pos))
        worst = max(d_a(order[:n_dev]), d_a(order[n_dev:]))
        if best is None or worst < best:
            best, best_order = worst, order
    return (sorted(hold_pos[i] for i in best_order[:n_dev]), sorted(hold_pos[i] for i in best_order[n_dev:]))
