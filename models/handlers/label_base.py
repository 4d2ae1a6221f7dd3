"""What every batch-labelling handler shares, mixed into its Beam `ModelHandler`.

RunInference sizes batches with `get_num_bytes` (Beam's default pickles the whole batch just to
measure it, images included), places the stage on an accelerator from `get_resource_hints`, and
names its counters after `get_metrics_namespace`. A label handler answers the three the same way.
"""
from __future__ import annotations

from typing import Sequence

from tessera.schemas.labels import LabelRequest


class LabelHandlerMixin:
    """Put first among the bases of a handler over `LabelRequest`s.

    Class attribute METRICS_NAMESPACE names the counters ("" keeps the base handler's); the handler
    sets `self._accelerator` (a Dataflow accelerator hint such as "type:nvidia-l4;count:1") or
    leaves it None for CPU workers.
    """

    METRICS_NAMESPACE = ""
    _accelerator: str | None = None

    def get_num_bytes(self, batch: Sequence[LabelRequest]) -> int:
        return sum(int(getattr(r.image, "nbytes", 0)) for r in batch)

    def get_metrics_namespace(self) -> str:
        return self.METRICS_NAMESPACE or super().get_metrics_namespace()

    def get_resource_hints(self) -> dict:
        return {"accelerator": self._accelerator} if self._accelerator else {}
