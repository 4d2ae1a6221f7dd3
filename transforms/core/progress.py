"""Progress for long jobs: Beam counters (visible in the Dataflow UI) plus periodic log lines.

A log line comes every `every` elements and at least every `every_s` seconds while elements
flow, with the rate; given the job's total (a one-element PCollection, e.g. the count of planned
windows, as a side input) it also says how far along the job is and an ETA.
"""
from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam.metrics import Metrics


def count(namespace: str, name: str, n: int = 1) -> None:
    """Bump a Beam counter; usable from any DoFn or Map."""
    Metrics.counter(namespace, name).inc(n)


def progress_line(label: str, seen: int, elapsed_s: float, total: int | None = None) -> str:
    """'label: 120/300 (40.0%), 3.1/s, ETA 58 s' (no total: count and rate only).

    Counts are this worker's: exact on the local runner; on a cluster each worker reports its
    share and the ETA is for the whole total at this worker's rate (the Dataflow UI sums the
    counters).
    """
    rate = seen / max(elapsed_s, 1e-9)
    if not total:
        return f"{label}: {seen}, {rate:.1f}/s"
    eta = max(total - seen, 0) / max(rate, 1e-9)
    return (f"{label}: {seen}/{total} ({100.0 * min(seen / total, 1.0):.1f}%), {rate:.1f}/s, "
            f"ETA {_duration(eta)}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _LogProgressFn(beam.DoFn):
    def __init__(self, namespace: str, name: str, every: int, every_s: float):
        self._namespace, self._name, self._every, self._every_s = namespace, name, every, every_s
        self._counter = Metrics.counter(namespace, name)

    def setup(self):
        self._seen = 0
        self._start = self._last = time.monotonic()

    def process(self, element, total=None):
        self._counter.inc()
        self._seen += 1
        now = time.monotonic()
        if self._seen % self._every == 0 or now - self._last >= self._every_s:
            self._last = now
            logging.info("%s", progress_line(f"{self._namespace}/{self._name}", self._seen,
                                             now - self._start, total))
        yield element


class LogProgress(beam.PTransform):
    """Pass-through step that counts elements in a counter and logs progress as they go.

    `total`: optional PCollection holding one int, the number of elements expected (enables the
    percentage and ETA).
    """

    def __init__(self, namespace: str, name: str, every: int = 1000, *, total=None,
                 every_s: float = 30.0):
        super().__init__()
        self._fn = _LogProgressFn(namespace, name, every, every_s)
        self._total = total

    def expand(self, pcoll):
        if self._total is None:
            return pcoll | beam.ParDo(self._fn)
        return pcoll | beam.ParDo(self._fn, total=beam.pvalue.AsSingleton(self._total))
