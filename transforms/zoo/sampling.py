"""Hyperparameters of every zoo network, and their grouping into trainable populations.

Pure and keyed: network `i` of a zoo with seed `s` always gets the same configuration, drawn from a
generator seeded by a hash of `(s, i)`, whatever the zoo size, population size or worker count.
Networks that share their discrete choices (optimizer, activation, kernel init) run as one
vectorized population; the train fraction is discrete too but is realised with per-network data
masks, so it does not split populations. Populations are chunks of `population_size` networks in
index order within a group, so their composition depends only on (seed, num_networks, size).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Iterable

import numpy as np

OPTIMIZERS = ("adam", "sgd", "rmsprop")
ACTIVATIONS = ("relu", "tanh")
W_INITS = ("he_normal", "orthogonal", "glorot_normal", "RandomNormal", "TruncatedNormal")
STD_INITS = ("RandomNormal", "TruncatedNormal")  # the inits that take `init_std`
TRAIN_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
LEARNING_RATE = (5e-4, 5e-2)  # log-uniform
L2REG = (1e-8, 1e-2)  # log-uniform
DROPOUT = (0.0, 0.7)  # uniform
INIT_STD = (1e-3, 0.5)  # log-uniform (the paper's range; only used by STD_INITS)
CHECKPOINT_EPOCHS = (0, 1, 2, 3, 20, 40, 60, 80, 86)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """One network's full configuration (the `config.*` columns of metrics.csv)."""
    index: int
    seed: int  # per-network seed for init, data subset and dropout
    optimizer: str
    activation: str
    w_init: str
    init_std: float  # sampled for every network (as in the release); only STD_INITS use it
    learning_rate: float
    l2reg: float
    dropout: float
    train_fraction: float

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.optimizer, self.activation, self.w_init)


def network_seed(zoo_seed: int, index: int, salt: str = "network") -> int:
    """Stable 63-bit seed from (zoo seed, network index): md5, not Python's salted `hash`."""
    digest = hashlib.md5(f"{salt}:{zoo_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_network(zoo_seed: int, index: int) -> NetworkConfig:
    """Draw network `index`'s hyperparameters (paper ranges) from its own keyed generator."""
    if index < 0:
        raise ValueError(f"network index must be >= 0, got {index}")
    seed = network_seed(zoo_seed, index)
    rng = np.random.default_rng(seed)
    optimizer = OPTIMIZERS[rng.integers(len(OPTIMIZERS))]
    activation = ACTIVATIONS[rng.integers(len(ACTIVATIONS))]
    w_init = W_INITS[rng.integers(len(W_INITS))]
    learning_rate = _log_uniform(rng, LEARNING_RATE)
    l2reg = _log_uniform(rng, L2REG)
    dropout = float(rng.uniform(*DROPOUT))
    train_fraction = float(TRAIN_FRACTIONS[rng.integers(len(TRAIN_FRACTIONS))])
    init_std = _log_uniform(rng, INIT_STD)
    return NetworkConfig(index=index, seed=seed, optimizer=optimizer, activation=activation,
                         w_init=w_init, init_std=init_std, learning_rate=learning_rate,
                         l2reg=l2reg, dropout=dropout, train_fraction=train_fraction)


@dataclasses.dataclass(frozen=True)
class Population:
    """Networks trained together; the unit Beam distributes (small: indices and choices only)."""
    population_id: int
    optimizer: str
    activation: str
    w_init: str
    indices: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"pop-{self.population_id:05d}"


def populations(zoo_seed: int, num_networks: int, population_size: int) -> list[Population]:
    """Group networks by discrete choices, then chunk each group in index order.

    Populations are numbered by their smallest network index, so ids, composition and order are a
    function of (seed, num_networks, population_size) only.
    """
    if num_networks < 1:
        raise ValueError(f"num_networks must be >= 1, got {num_networks}")
    if population_size < 1:
        raise ValueError(f"population size must be >= 1, got {population_size}")
    groups: dict[tuple, list[int]] = {}
    for index in range(num_networks):
        groups.setdefault(sample_network(zoo_seed, index).group, []).append(index)
    chunks = []
    for group, members in groups.items():
        for start in range(0, len(members), population_size):
            chunks.append((group, tuple(members[start:start + population_size])))
    chunks.sort(key=lambda chunk: chunk[1][0])
    return [Population(pid, *group, indices) for pid, (group, indices) in enumerate(chunks)]


def checkpoint_epochs(epochs: int, schedule: Iterable[int] = CHECKPOINT_EPOCHS) -> tuple[int, ...]:
    """The release's checkpoint epochs capped by `epochs`, always ending at `epochs` itself."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    kept = sorted({e for e in schedule if e <= epochs} | {epochs})
    return tuple(kept)


def config_columns(config: NetworkConfig) -> dict:
    """The `config.*` metrics.csv columns (names as in the released zoo)."""
    return {
        "config.optimizer": config.optimizer,
        "config.activation": config.activation,
        "config.w_init": config.w_init,
        "config.init_std": config.init_std,
        "config.learning_rate": config.learning_rate,
        "config.l2reg": config.l2reg,
        "config.dropout": config.dropout,
        "config.train_fraction": config.train_fraction,
        "config.b_init": "zeros",
    }
