"""Records every workload shares: dead letters and run manifests."""
from __future__ import annotations

import dataclasses


SCHEMA_VERSION = "1.2.0"  # see schemas/RELEASE_NOTES.md


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An input record that did not make it to an output, with why.

    `key` names the record (path, id, window), `stage` the step that gave up on it, `reason` a short
    stable token that counters are keyed by (e.g. "no_georeference"), `detail` free text.
    """
    key: str
    stage: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
