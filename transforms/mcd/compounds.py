"""Atoms and weighted compounds of a derivation (Keysers et al. 2020, "Measuring Compositional
Generalization", Sec. 2.1).

A derivation is a rule-application tree given as nested lists `[label, child, ...]` (a bare string
is a leaf). Atoms are the rule labels, one per application. Compounds are rooted connected
sub-trees of 2..`max_size` nodes, written canonically as `label(child,_,...)` where `_` marks an
argument position whose sub-tree is not part of the compound (so argument order is kept: `C_and(
S_twice,_)` and `C_and(_,S_twice)` differ). Keeping only sub-trees up to a bounded size is what the
CFQ code does too: the number of connected sub-graphs grows exponentially with size.

Weights: a compound G that almost always occurs inside the same bigger compound G' says little on
its own, so each occurrence gets the weight `1 - max_G' P(G'|G)` over the super-compounds G' that
contain that occurrence, and the example's weight of G is the max over its occurrences. P(G'|G) is
estimated over the whole data set as (#occurrences of G that extend to G') / (#occurrences of G).
The maximum over all super-compounds equals the maximum over the one-node extensions, because every
bigger super-compound contains a one-node extension and so cannot be more probable. Super-compounds
are compounds too, so they have at most `max_size` nodes: the largest compounds keep weight 1.

Everything here is pure (no Beam), so extraction can run in any Beam stage or in a test.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, NamedTuple, Sequence

DEFAULT_MAX_SIZE = 4  # for arbitrary derivations: sub-tree counts grow exponentially with size
SCAN_MAX_SIZE = 8  # SCAN trees have <= 11 nodes; 8 gives the paper's random-split D_C (~0.05)
SEP = "\x1f"  # joins (G, G') pair keys; never appears in rule labels we produce


class Tree(NamedTuple):
    """A derivation flattened into arrays (pre-order): labels, children and parent per node."""
    labels: list[str]
    children: list[list[int]]
    parent: list[int]


class Occurrence(NamedTuple):
    """One occurrence of a compound: its canonical form and those of its one-node extensions."""
    compound: str
    extensions: frozenset


def flatten(derivation) -> Tree:
    """Flattens a nested-list derivation; raises ValueError on anything that is not one."""
    labels: list[str] = []
    children: list[list[int]] = []
    parent: list[int] = []
    stack = [(derivation, -1)]
    while stack:
        node, par = stack.pop()
        if isinstance(node, str):
            label, kids = node, []
        elif isinstance(node, (list, tuple)) and node and isinstance(node[0], str):
            label, kids = node[0], list(node[1:])
        else:
            raise ValueError(f"not a derivation node: {str(node)[:80]!r}")
        if not label or SEP in label or any(c in label for c in "(),"):
            raise ValueError(f"bad rule label {label!r}")
        idx = len(labels)
        labels.append(label)
        children.append([])
        parent.append(par)
        if par >= 0:
            children[par].append(idx)
        # Push in reverse so children are numbered left to right.
        for kid in reversed(kids):
            stack.append((kid, idx))
    # Children were appended in visiting order, which is left-to-right thanks to the reversed push.
    return Tree(labels, children, parent)


def atoms(derivation) -> list[str]:
    """The rules applied in a derivation, one entry per application."""
    return list(flatten(derivation).labels)


def render(tree: Tree, root: int, nodes: frozenset) -> str:
    """Canonical text of the sub-tree of `tree` induced by `nodes` (connected, rooted at `root`)."""
    kids = tree.children[root]
    if not any(k in nodes for k in kids):
        return tree.labels[root]
    inner = ",".join(render(tree, k, nodes) if k in nodes else "_" for k in kids)
    return f"{tree.labels[root]}({inner})"


def _rooted_subtrees(tree: Tree, root: int, budget: int) -> list[frozenset]:
    """All connected node sets rooted at `root` with at most `budget` nodes."""
    if budget <= 0:
        return []
    partial = [(frozenset([root]), 1)]
    for kid in tree.children[root]:
        kid_options = _rooted_subtrees(tree, kid, budget - 1)
        grown = []
        for nodes, size in partial:
            for option in kid_options:
                if size + len(option) <= budget:
                    grown.append((nodes | option, size + len(option)))
        partial = partial + grown
    return [nodes for nodes, _ in partial]


def _extensions(tree: Tree, root: int, nodes: frozenset, max_size: int) -> frozenset:
    """Canonical forms of the one-node extensions of an occurrence (downwards and upwards)."""
    out: set[str] = set()
    if len(nodes) >= max_size:
        return frozenset(out)
    for node in nodes:
        for kid in tree.children[node]:
            if kid not in nodes:
                out.add(render(tree, root, nodes | {kid}))
    par = tree.parent[root]
    if par >= 0:
        out.add(render(tree, par, nodes | {par}))
    return frozenset(out)


def occurrences(derivation, max_size: int = DEFAULT_MAX_SIZE) -> list[Occurrence]:
    """Every occurrence of every compound (2..max_size nodes) in a derivation, with extensions."""
    tree = flatten(derivation) if not isinstance(derivation, Tree) else derivation
    out = []
    for root in range(len(tree.labels)):
        for nodes in _rooted_subtrees(tree, root, max_size):
            if len(nodes) < 2:
                continue
            out.append(Occurrence(render(tree, root, nodes), _extensions(tree, root, nodes, max_size)))
    return out


def occurrence_counts(occs: Iterable[Occurrence]) -> Counter:
    """Counts to aggregate over a data set: `G` -> #occurrences, and `G SEP G'` -> #extending."""
    counts: Counter = Counter()
    for occ in occs:
        counts[occ.compound] += 1
        for ext in occ.extensions:
            counts[occ.compound + SEP + ext] += 1
    return counts


def max_extension_probability(counts: dict) -> dict[str, dict[str, float]]:
    """From aggregated counts, P(G'|G) = count(G SEP G') / count(G), as {G: {G': p}}."""
    probs: dict[str, dict[str, float]] = {}
    for key, n in counts.items():
        if SEP in key:
            g, ext = key.split(SEP, 1)
            probs.setdefault(g, {})[ext] = n / counts[g]
    return probs


def compound_weights(occs: Sequence[Occurrence], probs: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per-example compound weights: max over occurrences of (1 - max P(G'|G) over its extensions).

    Compounds whose weight is 0 (always inside the same bigger compound) are left out.
    """
    weights: dict[str, float] = {}
    for occ in occs:
        table = probs.get(occ.compound, {})
        best = max((table.get(ext, 0.0) for ext in occ.extensions), default=0.0)
        w = 1.0 - best
        if w > weights.get(occ.compound, -1.0):
            weights[occ.compound] = w
    return {g: w for g, w in weights.items() if w > 1e-12}


def atom_counts(derivation) -> dict[str, int]:
    """Atom multiset of a derivation as {rule: count}."""
    return dict(Counter(atoms(derivation)))


def weighted_compounds_of(derivations: Iterable, max_size: int = DEFAULT_MAX_SIZE) -> list[dict[str, float]]:
    """Convenience for small in-memory data sets and tests: two passes, counts then weights."""
    all_occs = [occurrences(d, max_size) for d in derivations]
    counts: Counter = Counter()
    for occs in all_occs:
        counts.update(occurrence_counts(occs))
    probs = max_extension_probability(counts)
    return [compound_weights(occs, probs) for occs in all_occs]
