"""`tessera mixture` settings: the job around a mixture definition (tessera.config style).

The mixture itself (sources, weights, filters, dedup, shards) is a `schemas.mixture.MixtureConfig`
read from YAML/JSON or `registry:NAME`; this dataclass adds what one run of it needs.
"""
from __future__ import annotations

import dataclasses

from tessera.config import OVERWRITE_HELP, check_range, setting
from tessera.schemas.mixture import MixtureConfig


@dataclasses.dataclass(frozen=True)
class MixtureJobConfig:
    mixture: MixtureConfig = setting(cli=False)  # from --config (a file, or registry:NAME)
    output: str = setting(help="output directory (local or gs://)")
    overwrite: bool = setting(False, manifest=False, help=OVERWRITE_HELP)
    # per slot-assigning worker, before fragments are written
    fragment_buffer_bytes: int = setting(64 << 20, cli=False, manifest=False)

    def __post_init__(self):
        check_range(self, "fragment_buffer_bytes", 1)
