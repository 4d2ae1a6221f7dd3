"""Greedy Maximum-Compound-Divergence split construction (Keysers et al. 2020, Sec. 2.3).

Starting from one keyed-random example on each side, the algorithm alternately grows train and
test (whichever is furthest from its target size), each time adding, among a keyed-random sample
of unused candidates, the one that moves (D_A, D_C) best toward the targets: compound divergence
toward `target_compound_divergence` (1.0 = maximize) while atom divergence stays under its limit.
Every `remove_every` steps it also tries removing a member of the side it just grew, when that
improves the score, to escape local optima.

Scoring is incremental: with unnormalized counts P (train) and Q (test), the coefficient is
C = S / (|P|^a |Q|^(1-a)) with S = sum_k P_k^a Q_k^(1-a). Adding an example changes only the S
terms of its own atoms and compounds and the totals, so scoring a candidate costs O(its atoms and
compounds), not O(vocabulary). Examples are stored as CSR rows, so a whole sample of candidates is
scored with a few numpy gathers and one bincount.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from transforms.divergence import ATOM_ALPHA, COMPOUND_ALPHA

TRAIN, TEST = 0, 1


class Rows(NamedTuple):
    """Sparse per-example rows in CSR form: row i is idx/val[ptr[i]:ptr[i+1]]; `total` = row sums."""
    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    total: np.ndarray

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.ptr[i], self.ptr[i + 1]
        return self.idx[lo:hi], self.val[lo:hi]

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entries of several rows, concatenated, with the position in `rows` of each entry."""
        starts, lens = self.ptr[rows], self.ptr[rows + 1] - self.ptr[rows]
        seg = np.repeat(np.arange(len(rows)), lens)
        offsets = np.cumsum(lens) - lens
        pos = np.arange(int(lens.sum())) - offsets[seg] + starts[seg]
        return self.idx[pos], self.val[pos], seg


def _csr(rows: Sequence[Mapping[str, float]], vocab: dict[str, int]) -> Rows:
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    ptr = np.concatenate([[0], np.cumsum(lens)])
    idx = np.fromiter((vocab[k] for r in rows for k in r), dtype=np.int64, count=int(ptr[-1]))
    val = np.fromiter((v for r in rows for v in r.values()), dtype=np.float64, count=int(ptr[-1]))
    total = np.add.reduceat(val, ptr[:-1]) if len(val) else np.zeros(len(rows))
    total = np.where(lens > 0, total, 0.0)
    return Rows(ptr, idx, val, total)


class SparseExamples(NamedTuple):
    """Per-example atom counts and compound weights as CSR rows over sorted vocabularies."""
    atoms: Rows
    comps: Rows
    n_atoms: int
    n_compounds: int

    @property
    def size(self) -> int:
        return len(self.atoms.ptr) - 1


def encode(atoms: Sequence[Mapping[str, float]], compounds: Sequence[Mapping[str, float]]
           ) -> tuple[SparseExamples, list[str], list[str]]:
    """Builds the CSR rows and the (sorted, so deterministic) atom and compound vocabularies."""
    if len(atoms) != len(compounds):
        raise ValueError("atoms and compounds must describe the same examples")
    atom_vocab = sorted({k for r in atoms for k in r})
    comp_vocab = sorted({k for r in compounds for k in r})
    a_rows = _csr(atoms, {k: i for i, k in enumerate(atom_vocab)})
    c_rows = _csr(compounds, {k: i for i, k in enumerate(comp_vocab)})
    return SparseExamples(a_rows, c_rows, len(atom_vocab), len(comp_vocab)), atom_vocab, comp_vocab


def keyed_rng(*key) -> np.random.Generator:
    """A generator seeded from a hash of stable keys, so runs are reproducible anywhere."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class _Counts:
    """Unnormalized train/test counts of one kind (atoms or compounds) and the Chernoff sum S.

    Caches P_k^a and Q_k^(1-a) per key, so scoring a move needs one power per touched key.
    """

    def __init__(self, vocab_size: int, alpha: float):
        self.alpha = alpha
        self.exponent = (alpha, 1.0 - alpha)
        self.side = np.zeros((2, vocab_size))
        self.powered = np.zeros((2, vocab_size))  # side[TRAIN]^a, side[TEST]^(1-a)
        self.total = np.zeros(2)
        self.s = 0.0

    def recompute(self) -> None:
        for side in (TRAIN, TEST):
            self.powered[side] = self.side[side] ** self.exponent[side]
        self.s = float((self.powered[TRAIN] * self.powered[TEST]).sum())

    def divergence_after(self, rows: Rows, cand: np.ndarray, side: int, sign: float) -> np.ndarray:
        """1 - C after adding (sign=+1) or removing (sign=-1) each candidate row to/from `side`."""
        idx, val, seg = rows.gather(cand)
        other = self.powered[1 - side][idx]
        old = self.powered[side][idx] * other
        new = np.maximum(self.side[side][idx] + sign * val, 0.0) ** self.exponent[side] * other
        s_new = self.s + np.bincount(seg, weights=new - old, minlength=len(cand))
        totals = np.empty((len(cand), 2))
        totals[:] = self.total
        totals[:, side] += sign * rows.total[cand]
        denom = totals[:, TRAIN] ** self.alpha * totals[:, TEST] ** (1.0 - self.alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = np.where(denom > 0, s_new / np.where(denom > 0, denom, 1.0), 0.0)
        return 1.0 - coef

    def divergence(self) -> float:
        denom = self.total[TRAIN] ** self.alpha * self.total[TEST] ** (1.0 - self.alpha)
        return 1.0 - (self.s / denom if denom > 0 else 0.0)

    def apply(self, idx: np.ndarray, val: np.ndarray, side: int, sign: float) -> None:
        self.s -= float((self.powered[TRAIN][idx] * self.powered[TEST][idx]).sum())
        self.side[side][idx] += sign * val  # a row never repeats a key
        if sign < 0:  # removals may leave -1e-17 behind
            self.side[side][idx] = np.maximum(self.side[side][idx], 0.0)
        self.powered[side][idx] = self.side[side][idx] ** self.exponent[side]
        self.s += float((self.powered[TRAIN][idx] * self.powered[TEST][idx]).sum())
        self.total[side] = max(self.total[side] + sign * float(val.sum()), 0.0)


class DivergenceState:
    """Train/test membership counts with O(row) incremental scoring of moves."""

    def __init__(self, data: SparseExamples):
        self.data = data
        self.atoms = _Counts(data.n_atoms, ATOM_ALPHA)
        self.comps = _Counts(data.n_compounds, COMPOUND_ALPHA)

    def divergences(self) -> tuple[float, float]:
        return self.atoms.divergence(), self.comps.divergence()

    def score_moves(self, rows: np.ndarray, side: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        return (self.atoms.divergence_after(d.atoms, rows, side, sign),
                self.comps.divergence_after(d.comps, rows, side, sign))

    def apply(self, row: int, side: int, sign: float) -> None:
        d = self.data
        self.atoms.apply(*d.atoms.row(row), side, sign)
        self.comps.apply(*d.comps.row(row), side, sign)

    def resync(self) -> None:
        """Recomputes S from the counts, to stop floating-point drift over many updates."""
        self.atoms.recompute()
        self.comps.recompute()


def naive_score_moves(data: SparseExamples, members: Sequence[set[int]], rows: np.ndarray, side: int,
                      sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference scorer: rebuilds both full distributions for every candidate (O(vocabulary)).

    Used by tests to check the incremental scorer and by benchmarks/mcd.py as the speed baseline.
    """
    out_a, out_c = np.zeros(len(rows)), np.zeros(len(rows))
    for j, row in enumerate(rows):
        sets = [set(members[TRAIN]), set(members[TEST])]
        (sets[side].add if sign > 0 else sets[side].discard)(int(row))
        for kind, alpha, out in (("atom", ATOM_ALPHA, out_a), ("comp", COMPOUND_ALPHA, out_c)):
            rows_of = data.atoms if kind == "atom" else data.comps
            width = data.n_atoms if kind == "atom" else data.n_compounds
            dists = []
            for members_now in sets:
                vec = np.zeros(width)
                for i in members_now:
                    idx, val = rows_of.row(i)
                    vec[idx] += val
                dists.append(vec / vec.sum() if vec.sum() > 0 else vec)
            out[j] = 1.0 - float((dists[0] ** alpha * dists[1] ** (1 - alpha)).sum())
    return out_a, out_c


def full_vector_score_moves(state: DivergenceState, rows: np.ndarray, side: int, sign: float
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Non-incremental scorer over the maintained count vectors: O(vocabulary) per candidate.

    The natural baseline without the incremental trick (benchmarks/mcd.py times both).
    """
    d = state.data
    out = []
    for counts, rows_of in ((state.atoms, d.atoms), (state.comps, d.comps)):
        res = np.zeros(len(rows))
        for j, row in enumerate(rows):
            vecs = counts.side.copy()
            idx, val = rows_of.row(row)
            vecs[side][idx] += sign * val
            np.maximum(vecs, 0.0, out=vecs)
            p, q = vecs[TRAIN] / vecs[TRAIN].sum(), vecs[TEST] / vecs[TEST].sum()
            res[j] = 1.0 - float((p ** counts.alpha * q ** (1.0 - counts.alpha)).sum())
        out.append(res)
    return out[0], out[1]


@dataclass(frozen=True)
class GreedyConfig:
    """Sizes, targets and search effort of one greedy MCD construction."""
    train_size: int
    test_size: int
    max_atom_divergence: float = 0.02
    target_compound_divergence: float | None = None  # None: maximize
    seed: int = 0
    candidates_per_step: int = 512
    remove_every: int = 2
    removal_candidates: int = 256
    atom_penalty: float = 20.0
    atom_margin: float = 0.97  # aim a bit under the limit so dev and test halves keep to it too
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


def _score(d_a: np.ndarray, d_c: np.ndarray, cfg: GreedyConfig) -> np.ndarray:
    target = 1.0 if cfg.target_compound_divergence is None else cfg.target_compound_divergence
    over = np.maximum(d_a - cfg.max_atom_divergence * cfg.atom_margin, 0.0)
    return -np.abs(d_c - target) - cfg.atom_penalty * over


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
        return np.unique(self.items[rng.integers(0, self.n, size=k)])


def greedy_split(data: SparseExamples, cfg: GreedyConfig, pool: Sequence[int] | None = None) -> SplitResult:
    """Builds train/test index lists of the configured sizes from `pool` (default: all examples).

    Raises:
        ValueError: if the sizes cannot be met from the pool.
    """
    start = time.perf_counter()
    pool = np.arange(data.size) if pool is None else np.asarray(pool, dtype=np.int64)
    if cfg.train_size < 1 or cfg.test_size < 1:
        raise ValueError(f"train and test sizes must be >= 1 (got {cfg.train_size}, {cfg.test_size})")
    if cfg.train_size + cfg.test_size > len(pool):
        raise ValueError(f"train {cfg.train_size} + test {cfg.test_size} exceed the pool of {len(pool)}")
    rng = keyed_rng("mcd-greedy", cfg.seed)
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
            d_atom, d_comp = state.divergences()
            trajectory.append({"step": steps, "train": sides[TRAIN].n, "test": sides[TEST].n,
                               "atom_divergence": d_atom, "compound_divergence": d_comp})
    if sides[TRAIN].n < targets[TRAIN] or sides[TEST].n < targets[TEST]:
        raise RuntimeError(f"greedy split stopped after {steps} steps at sizes "
                           f"{sides[TRAIN].n}/{sides[TEST].n}; lower remove_every's effect or the sizes")
    state.resync()
    d_atom, d_comp = state.divergences()
    trajectory.append({"step": steps, "train": sides[TRAIN].n, "test": sides[TEST].n,
                       "atom_divergence": d_atom, "compound_divergence": d_comp})
    train = sorted(int(i) for i in sides[TRAIN].items[:sides[TRAIN].n])
    test = sorted(int(i) for i in sides[TEST].items[:sides[TEST].n])
    return SplitResult(train, test, d_atom, d_comp, trajectory, steps, removals, time.perf_counter() - start)


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
