"""The split step of `tessera mcd-split` and the files it writes (split.json, stats.json,
examples.jsonl, divergence_trajectory.png).

The greedy search is sequential by nature, so it runs in one Beam task over the gathered sparse
per-example rows (a few hundred bytes per example: 240k CFQ-sized examples fit easily).
"""
from __future__ import annotations

import io
import json
import time

from tessera import fileio
from tessera.config import ConfigError
from tessera.transforms.mcd import divergence
from tessera.transforms.mcd import greedy as mcd_greedy


def split_sizes(n: int, train: float, dev: float, test: float) -> tuple[int, int, int]:
    """Example counts for fractions of a pool of n. Raises ValueError when they cannot be met."""
    check_fractions(train, dev, test)
    sizes = (round(train * n), round(dev * n), round(test * n))
    if min(sizes) < 1:
        raise ValueError(f"the fractions train={train} dev={dev} test={test} of {n} examples leave "
                         f"an empty set {sizes}; use more data or larger fractions")
    if sum(sizes) > n:
        raise ValueError(f"train+dev+test sizes {sizes} exceed the {n} usable examples")
    return sizes


def check_fractions(train: float, dev: float, test: float) -> None:
    """Fails fast, before any pipeline runs, on fractions that cannot add up."""
    for name, value in (("train", train), ("dev", dev), ("test", test)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"--{name} must be a fraction in (0, 1), got {value}")
    if train + dev + test > 1.0 + 1e-9:
        raise ValueError(f"--train {train} + --dev {dev} + --test {test} = {train + dev + test:.3f} > 1: "
                         "the sets would need more examples than there are")


# McdSplitConfig fields that set GreedyConfig's search effort
_SEARCH_EFFORT = ("candidates_per_step", "restarts", "swap_steps")


def make_split(records: list[dict], config) -> dict:
    """Runs the greedy MCD (or the random baseline) over gathered records; returns everything to write.

    `config` is an `McdSplitConfig` (transforms/mcd/config.py).

    The greedy builds train vs a hold-out of dev+test size; the hold-out is then divided into dev
    and test by a keyed shuffle, as in CFQ, so dev and test have the same compound distribution.
    """
    records = sorted(records, key=lambda r: r["index"])
    n = len(records)
    if not n:
        raise ConfigError(f"--dataset {config.dataset}: no valid example to split (every record "
                          "was rejected; errors/ says why); lines need input, output and a "
                          "derivation, or atoms and compounds")
    try:
        n_train, n_dev, n_test = split_sizes(n, config.train, config.dev, config.test)
    except ValueError as err:
        raise ConfigError(f"--train/--dev/--test: {err}") from None
    atoms = [r["atoms"] for r in records]
    comps = [r["compounds"] for r in records]
    start = time.perf_counter()
    trajectory: list[dict] = []
    if config.random_baseline:
        train_pos, hold_pos = mcd_greedy.random_split(n, n_train, n_dev + n_test, config.seed)
        steps = removals = swaps = restart = 0
    else:
        data, _, _ = mcd_greedy.encode(atoms, comps)
        cfg = mcd_greedy.GreedyConfig(
            train_size=n_train, test_size=n_dev + n_test, seed=config.seed,
            max_atom_divergence=config.max_atom_divergence,
            target_compound_divergence=config.target_compound_divergence,
            **{k: getattr(config, k) for k in _SEARCH_EFFORT})
        result = mcd_greedy.greedy_split(data, cfg)
        train_pos, hold_pos = result.train, result.test
        trajectory, steps, removals = result.trajectory, result.steps, result.removals
        swaps, restart = result.swaps, result.restart
    seconds = time.perf_counter() - start
    dev_pos, test_pos = mcd_greedy.divide_holdout(atoms, train_pos, hold_pos, n_dev, config.seed)
    index = [r["index"] for r in records]
    split = {"trainIdxs": [index[i] for i in train_pos], "devIdxs": [index[i] for i in dev_pos],
             "testIdxs": [index[i] for i in test_pos]}
    stats = {
        "method": "random" if config.random_baseline else "mcd-greedy",
        "seed": config.seed, "num_examples": n,
        "sizes": {"train": len(train_pos), "dev": len(dev_pos), "test": len(test_pos)},
        "train_test": divergence.split_divergences(atoms, comps, train_pos, test_pos),
        "train_dev": divergence.split_divergences(atoms, comps, train_pos, dev_pos),
        "train_holdout": divergence.split_divergences(atoms, comps, train_pos, hold_pos),
        "max_atom_divergence": config.max_atom_divergence,
        "target_compound_divergence": config.target_compound_divergence,
        "split_seconds": seconds, "steps": steps, "removals": removals, "swaps_kept": swaps,
        "restart_kept": restart, "restarts": config.restarts,
        "num_atoms": len({k for a in atoms for k in a}), "num_compounds": len({k for c in comps for k in c}),
    }
    return {"split": split, "stats": stats, "trajectory": trajectory, "records": records}


def trajectory_png(trajectory: list[dict], title: str) -> bytes:
    """A PNG of D_A and D_C against the number of examples placed, during construction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    placed = [t["train"] + t["test"] for t in trajectory]
    ax.plot(placed, [t["compound_divergence"] for t in trajectory], label="compound divergence D_C")
    ax.plot(placed, [t["atom_divergence"] for t in trajectory], label="atom divergence D_A")
    ax.set_xlabel("examples placed (train + hold-out)")
    ax.set_ylabel("divergence")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


OUTPUT_FILES = ("split.json", "stats.json", "examples.jsonl", "divergence_trajectory.png")


def write_split_outputs(result: dict, output_dir: str) -> list[str]:
    """Writes split.json, stats.json, examples.jsonl and the trajectory PNG; returns their paths."""
    paths = {name: fileio.join(output_dir, name) for name in OUTPUT_FILES}
    fileio.atomic_write_json(paths["split.json"], result["split"])
    fileio.atomic_write_json(paths["stats.json"], result["stats"])
    lines = (json.dumps({"index": r["index"], "input": r["input"], "output": r["output"],
                         "atoms": r["atoms"], "compounds": r["compounds"]}, sort_keys=True) + "\n"
             for r in result["records"])
    fileio.atomic_write_text(paths["examples.jsonl"], "".join(lines))
    stats = result["stats"]["train_test"]
    title = (f"{result['stats']['method']} seed {result['stats']['seed']}: "
             f"D_A={stats['atom_divergence']:.3f} D_C={stats['compound_divergence']:.3f}")
    fileio.atomic_write_bytes(paths["divergence_trajectory.png"], trajectory_png(result["trajectory"], title))
    return list(paths.values())
