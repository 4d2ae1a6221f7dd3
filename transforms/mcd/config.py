"""`tessera mcd-split` and `tessera mcd-stats` settings (one frozen dataclass each; tessera.config)."""
from __future__ import annotations

import dataclasses

from tessera.config import OVERWRITE_HELP, ConfigError, check, check_range, setting
from tessera.transforms.mcd import compounds
from tessera.transforms.mcd.greedy import GreedyConfig
from tessera.transforms.mcd.split import check_fractions


def default_compound_size(dataset: str | None) -> int:
    return compounds.SCAN_MAX_SIZE if dataset == "scan" else compounds.DEFAULT_MAX_SIZE


_COMPOUND_SIZE_HELP = ("largest compound (nodes of a rooted sub-tree) to extract; default "
                       f"{compounds.SCAN_MAX_SIZE} for scan, {compounds.DEFAULT_MAX_SIZE} for files")


def _resolve_compound_size(config) -> None:
    if config.max_compound_size is None:  # frozen: the derived default is set once, here
        object.__setattr__(config, "max_compound_size", default_compound_size(config.dataset))
    check(config.max_compound_size >= 2,
          "--max-compound-size must be >= 2 (compounds have at least two rules)")


@dataclasses.dataclass(frozen=True)
class McdSplitConfig:
    dataset: str = setting(help="'scan' or a JSONL file (local or gs://)")
    output: str = setting(help="output directory")
    overwrite: bool = setting(False, manifest=False, help=OVERWRITE_HELP)
    train: float = setting(0.4, help="train fraction of all examples")
    dev: float = setting(0.05, help="dev fraction")
    test: float = setting(0.05, help="test fraction")
    max_atom_divergence: float = setting(0.02, help="upper bound on D_A, in [0, 1]")
    target_compound_divergence: float | None = setting(
        None, type=float, help="aim at this D_C instead of maximizing it (divergence-curve splits)")
    seed: int = setting(0)
    random_baseline: bool = setting(False, help="a keyed-random split of the same sizes instead of MCD")
    max_compound_size: int | None = setting(None, type=int, help=_COMPOUND_SIZE_HELP)
    candidates_per_step: int = setting(GreedyConfig.candidates_per_step,
                                       help="keyed-random candidates scored per greedy step")
    restarts: int = setting(GreedyConfig.restarts,
                            help="independent greedy runs (keyed by seed and run); the best is kept")
    swap_steps: int = setting(GreedyConfig.swap_steps,
                              help="swap-search steps after the greedy (0: none)")

    def __post_init__(self):
        try:
            check_fractions(self.train, self.dev, self.test)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        check_range(self, "max_atom_divergence", 0.0, 1.0)
        if self.target_compound_divergence is not None:
            check_range(self, "target_compound_divergence", 0.0, 1.0)
        check_range(self, "candidates_per_step", 1)
        check_range(self, "restarts", 1)
        check_range(self, "swap_steps", 0)
        _resolve_compound_size(self)


@dataclasses.dataclass(frozen=True)
class McdStatsConfig:
    split: str = setting(help="split JSON (trainIdxs, devIdxs, testIdxs)")
    examples: str | None = setting(None, help="examples.jsonl from mcd-split (atoms, compounds, index)")
    dataset: str | None = setting(None, help="'scan' or JSONL with derivations / atoms+compounds")
    output: str | None = setting(None, help="write the stats JSON here too")
    max_compound_size: int | None = setting(None, type=int, help=_COMPOUND_SIZE_HELP)

    def __post_init__(self):
        check((self.examples is None) != (self.dataset is None),
              "give exactly one of --examples (from mcd-split) or --dataset (scan or JSONL)")
        _resolve_compound_size(self)


@dataclasses.dataclass(frozen=True)
class ScanGenerateConfig:
    output: str = setting(help="text file in the official SCAN format")
    derivations: str | None = setting(
        None, help="JSONL with derivations (default: OUTPUT with .jsonl instead of .txt)")

    def __post_init__(self):
        check(bool(self.output), "--output must name a file")
        if self.derivations is None:  # frozen: the derived default is set once, here
            stem = self.output[:-4] if self.output.endswith(".txt") else self.output
            object.__setattr__(self, "derivations", stem + ".jsonl")

    @property
    def manifest_dir(self) -> str:
        return self.output.rsplit("/", 1)[0] if "/" in self.output else "."
