"""Incremental divergence scoring for MCD split construction (Keysers et al. 2020, Sec. 2.1).

With unnormalized counts P (train) and Q (test), the Chernoff coefficient is
C = S / (|P|^a |Q|^(1-a)) with S = sum_k P_k^a Q_k^(1-a). Adding or removing an example changes only
the S terms of its own atoms and compounds and the totals, so scoring a move costs O(its atoms and
compounds), not O(vocabulary). Examples are stored as CSR rows, so a whole sample of candidates is
scored with a few numpy gathers and one segmented sum. The two non-incremental scorers at the
bottom are the references the tests compare against and the baselines benchmarks/mcd.py times.
"""
from __future__ import annotations

import hashlib
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from tessera.transforms.mcd.divergence import ATOM_ALPHA, COMPOUND_ALPHA

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

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The entries of several rows, concatenated, with each row's offset and length in them."""
        starts = self.ptr[rows]
        lens = self.ptr[rows + 1] - starts
        ends = np.cumsum(lens)
        offsets = ends - lens
        pos = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - offsets, lens)
        return self.idx[pos], self.val[pos], offsets, lens


def _csr(rows: Sequence[Mapping[str, float]], vocab: dict[str, int]) -> Rows:
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    ptr = np.concatenate([[0], np.cumsum(lens)])
    idx = np.fromiter((vocab[k] for r in rows for k in r), dtype=np.int64, count=int(ptr[-1]))
    val = np.fromiter((v for r in rows for v in r.values()), dtype=np.float64, count=int(ptr[-1]))
    # the appended 0 keeps a trailing empty row in range; empty rows get reduceat's stray entry
    total = np.where(lens > 0, np.add.reduceat(np.append(val, 0.0), ptr[:-1]), 0.0) if len(rows) else val
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

    def __init__(self, vocab_size: int, alpha: float, side: np.ndarray | None = None,
                 powered: np.ndarray | None = None):
        self.alpha = alpha
        self.exponent = (alpha, 1.0 - alpha)
        self.side = np.zeros((2, vocab_size)) if side is None else side
        # side[TRAIN]^a, side[TEST]^(1-a); updated in place, as they may be views of joint arrays
        self.powered = np.zeros((2, vocab_size)) if powered is None else powered
        self.total = np.zeros(2)
        self.s = 0.0

    def recompute(self) -> None:
        for side in (TRAIN, TEST):
            self.powered[side] = self.side[side] ** self.exponent[side]
        self.s = float((self.powered[TRAIN] * self.powered[TEST]).sum())

    def divergence_after_delta(self, delta: np.ndarray, row_totals: np.ndarray, side: int,
                               sign: float) -> np.ndarray:
        """1 - C for moves that change S by `delta` and the side's total by sign * row_totals."""
        s_new = delta + self.s
        changed = self.total[side] + sign * row_totals
        if side == TRAIN:
            denom = changed ** self.alpha * self.total[TEST] ** (1.0 - self.alpha)
        else:
            denom = self.total[TRAIN] ** self.alpha * changed ** (1.0 - self.alpha)
        return 1.0 - np.divide(s_new, denom, out=np.zeros_like(s_new), where=denom > 0)

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


def _joint_rows(data: SparseExamples) -> tuple[Rows, np.ndarray]:
    """Atom and compound rows merged (atoms first, compound keys shifted by n_atoms), so one
    gather and one segmented sum score both kinds; also returns each row's number of atom entries."""
    a, c = data.atoms, data.comps
    a_lens, c_lens = np.diff(a.ptr), np.diff(c.ptr)
    ptr = a.ptr + c.ptr
    row_of_a = np.repeat(np.arange(data.size), a_lens)
    row_of_c = np.repeat(np.arange(data.size), c_lens)
    a_pos = ptr[row_of_a] + np.arange(len(a.idx)) - a.ptr[row_of_a]
    c_pos = ptr[row_of_c] + a_lens[row_of_c] + np.arange(len(c.idx)) - c.ptr[row_of_c]
    idx = np.empty(len(a.idx) + len(c.idx), dtype=np.int64)
    val = np.empty(len(idx))
    idx[a_pos], val[a_pos] = a.idx, a.val
    idx[c_pos], val[c_pos] = c.idx + data.n_atoms, c.val
    return Rows(ptr, idx, val, a.total + c.total), a_lens


class DivergenceState:
    """Train/test membership counts with O(row) incremental scoring of moves.

    Atom and compound counts live in one pair of arrays (atoms first) so that scoring a sample of
    candidates is one gather, one power and one segmented sum; `atoms` and `comps` are views.
    """

    def __init__(self, data: SparseExamples):
        self.data = data
        width = data.n_atoms + data.n_compounds
        self._side, self._powered = np.zeros((2, width)), np.zeros((2, width))
        self._exponent = np.empty((2, width))
        for kind, (lo, hi), alpha in (("atoms", (0, data.n_atoms), ATOM_ALPHA),
                                      ("comps", (data.n_atoms, width), COMPOUND_ALPHA)):
            self._exponent[TRAIN, lo:hi], self._exponent[TEST, lo:hi] = alpha, 1.0 - alpha
            setattr(self, kind, _Counts(hi - lo, alpha, self._side[:, lo:hi], self._powered[:, lo:hi]))
        self._rows, self._atom_entries = _joint_rows(data)

    def divergences(self) -> tuple[float, float]:
        return self.atoms.divergence(), self.comps.divergence()

    def score_moves(self, rows: np.ndarray, side: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
        """(D_A, D_C) after adding (sign=+1) or removing (sign=-1) each of `rows` to/from `side`."""
        idx, val, offsets, lens = self._rows.gather(rows)
        # per entry: (new_k^e - old_k^e) * other_k, in place since this is the hot loop
        x = self._side[side][idx]
        x += sign * val
        if sign < 0:
            np.maximum(x, 0.0, out=x)
        np.power(x, self._exponent[side][idx], out=x)
        x -= self._powered[side][idx]
        x *= self._powered[1 - side][idx]
        n_atom = self._atom_entries[rows]
        bounds = np.empty(2 * len(rows), dtype=np.int64)
        bounds[0::2], bounds[1::2] = offsets, offsets + n_atom
        seg_len = np.empty_like(bounds)
        seg_len[0::2], seg_len[1::2] = n_atom, lens - n_atom
        sums = np.add.reduceat(np.append(x, 0.0), bounds)  # the extra 0: empty trailing segments
        sums[seg_len == 0] = 0.0  # reduceat gives the next entry for an empty segment
        d = self.data
        return (self.atoms.divergence_after_delta(sums[0::2], d.atoms.total[rows], side, sign),
                self.comps.divergence_after_delta(sums[1::2], d.comps.total[rows], side, sign))

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
