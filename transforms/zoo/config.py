"""`tessera cnn-zoo` and `tessera zoo-predict` settings (one frozen dataclass each; tessera.config)."""
from __future__ import annotations

import dataclasses

from tessera.config import ACCELERATOR_HELP, OVERWRITE_HELP, ConfigError, check_range, setting
from tessera.transforms.zoo.datasets import OFFLINE, TFDS, UnknownDatasetError, check_name


@dataclasses.dataclass(frozen=True)
class ZooConfig:
    dataset: str = setting(help=f"offline {OFFLINE} or TFDS {TFDS}")
    num_networks: int = setting(help="networks in the zoo (>= 1)")
    output: str = setting(help="output directory (local or gs://)")
    epochs: int = setting(86, help="training epochs (the release: 86)")
    population: int = setting(64, help="max networks per vmapped population")
    seed: int = setting(0, help="zoo seed; network i's config hashes (seed, i)")
    accelerator: str | None = setting(None, help=ACCELERATOR_HELP)
    resume: bool = setting(False, manifest=False,
                           help="reuse shards of an interrupted run into the same --output "
                                "(checked row by row)")
    overwrite: bool = setting(False, manifest=False, help=OVERWRITE_HELP)

    def __post_init__(self):
        try:
            check_name(self.dataset)
        except UnknownDatasetError as err:
            raise ConfigError(f"--dataset: {err}") from None
        check_range(self, "num_networks", 1)
        check_range(self, "population", 1)
        check_range(self, "epochs", 0)


@dataclasses.dataclass(frozen=True)
class ZooPredictConfig:
    zoo: str = setting(help="a cnn-zoo output directory")
    output: str = setting(help="output directory (local or gs://)")
    overwrite: bool = setting(False, manifest=False, help=OVERWRITE_HELP)
    chunk: int = setting(500, help="networks per feature task")
    seed: int = setting(0, help="GBM random_state")

    def __post_init__(self):
        check_range(self, "chunk", 1)
