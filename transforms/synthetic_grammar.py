"""A CFQ-like probabilistic question grammar, to produce CFQ-sized corpora with derivations.

CFQ's 239,357 questions are not redistributable inside tests and benchmarks here, so
`benchmarks/mcd.py` splits a synthetic corpus of the same size from this richer grammar instead:
yes/no and wh-questions over entities with recursive relative clauses, possessives and
conjunctions, and 30+ lexical rules. Example i is drawn with a generator keyed by (seed, i), so
any subset is reproducible on any worker.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from transforms.mcd_greedy import keyed_rng

VERBS = ("directed", "edited", "produced", "wrote", "married", "influenced", "employed", "founded",
         "starred_in", "acquired", "distributed", "cinematographed")
NOUNS = ("film", "person", "actor", "director", "producer", "writer", "company", "editor",
         "spouse", "country")
NAMES = tuple(f"M{i}" for i in range(8))
DETS = ("a", "the")
MAX_DEPTH = 4


def _pick(rng: np.random.Generator, options, probs=None):
    return options[int(rng.choice(len(options), p=probs))]


def _np(rng, depth) -> tuple[list, str]:
    options = ["NP_name", "NP_det"] + (["NP_rel", "NP_poss"] if depth < MAX_DEPTH else [])
    probs = [0.45, 0.35, 0.12, 0.08] if depth < MAX_DEPTH else [0.55, 0.45]
    kind = _pick(rng, options, probs)
    if kind == "NP_name":
        name = _pick(rng, NAMES)
        return [kind, f"NAME_{name}"], name
    det, noun = _pick(rng, DETS), _pick(rng, NOUNS)
    if kind == "NP_det":
        return [kind, f"DET_{det}", f"N_{noun}"], f"{det} {noun}"
    if kind == "NP_rel":
        vp, vp_text = _vp(rng, depth + 1)
        return [kind, f"DET_{det}", f"N_{noun}", vp], f"{det} {noun} that {vp_text}"
    inner, inner_text = _np(rng, depth + 1)
    return [kind, inner, f"N_{noun}"], f"{inner_text} 's {noun}"


def _vp(rng, depth) -> tuple[list, str]:
    if depth < MAX_DEPTH and rng.random() < 0.22:
        left, lt = _vp(rng, depth + 1)
        right, rt = _vp(rng, depth + 1)
        return ["VP_and", left, right], f"{lt} and {rt}"
    verb = _pick(rng, VERBS)
    obj, text = _np(rng, depth + 1)
    return ["VP_verb", f"V_{verb}", obj], f"{verb} {text}"


def example(seed: int, index: int) -> dict:
    """Question `index` of the corpus `seed`: {input, output, derivation}."""
    rng = keyed_rng("synthetic-cfq", seed, index)
    kind = _pick(rng, ("Q_yesno", "Q_who", "Q_what"), [0.4, 0.35, 0.25])
    vp, vp_text = _vp(rng, 1)
    if kind == "Q_yesno":
        subj, subj_text = _np(rng, 1)
        tree, text = [kind, subj, vp], f"did {subj_text} {vp_text}"
    elif kind == "Q_who":
        tree, text = [kind, vp], f"who {vp_text}"
    else:
        noun = _pick(rng, NOUNS)
        tree, text = [kind, f"N_{noun}", vp], f"what {noun} {vp_text}"
    return {"input": text, "output": _logical_form(tree), "derivation": tree}


def _logical_form(tree) -> str:
    """A bracketed rendering of the derivation, standing in for CFQ's SPARQL output."""
    if isinstance(tree, str):
        return tree
    return "(" + " ".join([tree[0]] + [_logical_form(t) for t in tree[1:]]) + ")"


def corpus(seed: int, n: int, start: int = 0) -> Iterator[dict]:
    for index in range(start, start + n):
        yield example(seed, index)
