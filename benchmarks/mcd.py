"""MCD split speed: SCAN on one core, a CFQ-sized synthetic corpus, incremental vs naive scoring.

Prints, for each corpus, the CPU seconds (this process, one core: numpy runs single-threaded here)
of atom/compound extraction and of the greedy split, the resulting divergences, and the per-
candidate scoring cost of the incremental scorer against two non-incremental baselines measured in
the same run on the same candidates: recomputing the Chernoff sums over the whole vocabulary from
the maintained count vectors, and rebuilding both distributions from the member sets.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mcd.py                  # SCAN + 240k synthetic
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mcd.py --synthetic 20000  # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tessera.transforms.mcd import compounds  # noqa: E402
from tessera.transforms.mcd import divergence
from tessera.transforms.mcd import greedy as mcd_greedy
from tessera.transforms.mcd import scan as mcd_scan
from tests.fixtures import synthetic_grammar


def _cpu(fn, *args, **kwargs):
    start = time.process_time()
    out = fn(*args, **kwargs)
    return out, time.process_time() - start


def extract(derivations, max_size):
    atoms = [compounds.atom_counts(d) for d in derivations]
    weights = compounds.weighted_compounds_of(derivations, max_size)
    return atoms, weights


def scoring_speedup(data, result, n_candidates: int, n_naive: int) -> dict:
    """Per-candidate scoring time at the final state: incremental vs the two baselines."""
    state = mcd_greedy.DivergenceState(data)
    for i in result.train:
        state.apply(i, mcd_greedy.TRAIN, +1)
    for i in result.test:
        state.apply(i, mcd_greedy.TEST, +1)
    used = set(result.train) | set(result.test)
    pool = np.array([i for i in range(data.size) if i not in used] or list(range(data.size)))
    rows = mcd_greedy.keyed_rng("bench", 0).choice(pool, size=min(n_candidates, len(pool)), replace=False)
    reps = 20
    _, inc = _cpu(lambda: [state.score_moves(rows, mcd_greedy.TRAIN, +1) for _ in range(reps)])
    inc_per = inc / (reps * len(rows))
    (full_a, full_c), full = _cpu(mcd_greedy.full_vector_score_moves, state, rows, mcd_greedy.TRAIN, +1)
    full_per = full / len(rows)
    fast_a, fast_c = state.score_moves(rows, mcd_greedy.TRAIN, +1)
    assert np.allclose(full_c, fast_c, atol=1e-9) and np.allclose(full_a, fast_a, atol=1e-9)
    few = rows[:n_naive]
    _, naive = _cpu(mcd_greedy.naive_score_moves, data, [set(result.train), set(result.test)], few,
                    mcd_greedy.TRAIN, +1)
    naive_per = naive / len(few)
    return {"incremental_us_per_candidate": round(inc_per * 1e6, 2),
            "full_vector_us_per_candidate": round(full_per * 1e6, 1),
            "from_scratch_us_per_candidate": round(naive_per * 1e6, 1),
            "speedup_vs_full_vector": round(full_per / inc_per, 1),
            "speedup_vs_from_scratch": round(naive_per / inc_per, 1)}


def bench(name, derivations, max_size, cfg_kwargs, fractions=(0.4, 0.1), n_naive=5) -> dict:
    (atoms, weights), t_extract = _cpu(extract, derivations, max_size)
    (data, _, comp_vocab), t_encode = _cpu(mcd_greedy.encode, atoms, weights)
    n = len(atoms)
    cfg = mcd_greedy.GreedyConfig(train_size=round(fractions[0] * n), test_size=round(fractions[1] * n),
                                  **cfg_kwargs)
    result, t_split = _cpu(mcd_greedy.greedy_split, data, cfg)
    rt, rs = mcd_greedy.random_split(n, cfg.train_size, cfg.test_size, 0)
    rand = divergence.split_divergences(atoms, weights, rt, rs)
    out = {"corpus": name, "examples": n, "max_compound_size": max_size, "compounds": len(comp_vocab),
           "extract_cpu_s": round(t_extract, 1), "encode_cpu_s": round(t_encode, 1),
           "split_cpu_s": round(t_split, 1), "steps": result.steps, "removals": result.removals,
           "restarts": cfg.restarts, "restart_kept": result.restart, "swap_steps": cfg.swap_steps,
           "swaps_kept": result.swaps,
           "atom_divergence": round(result.atom_divergence, 4),
           "compound_divergence": round(result.compound_divergence, 4),
           "random_compound_divergence": round(rand["compound_divergence"], 4),
           **scoring_speedup(data, result, 64, n_naive),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=240_000, help="size of the synthetic corpus (0: skip)")
    parser.add_argument("--synthetic-compound-size", type=int, default=3)
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    results = []
    if not args.skip_scan:
        scan = [ex["derivation"] for ex in mcd_scan.examples()]
        row = bench("scan", scan, compounds.SCAN_MAX_SIZE, {"seed": 0})
        row["split_under_60s"] = row["split_cpu_s"] < 60
        results.append(row)
    if args.synthetic:
        corpus, t_gen = _cpu(lambda: [ex["derivation"] for ex in synthetic_grammar.corpus(0, args.synthetic)])
        print(f"generated {len(corpus)} synthetic examples in {t_gen:.1f} s CPU", flush=True)
        # fewer removals than on SCAN (~100k greedy steps instead of ~200k) and one greedy run
        row = bench(f"synthetic-{args.synthetic}", corpus, args.synthetic_compound_size,
                    {"seed": 0, "remove_every": 40, "restarts": 1}, n_naive=2)
        row["generate_cpu_s"] = round(t_gen, 1)
        results.append(row)
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
