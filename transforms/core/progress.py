"""Progress for long jobs: Beam counters (visible in the Dataflow UI) plus periodic log lines."""
from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam.metrics import Metrics


def count(namespace: str, name: str, n: int = 1) -> None:
    """Bump a Beam counter; usable from any DoFn or Map."""
    Metrics.counter(namespace, name).inc(n)


class _LogProgressFn(beam.DoFn):
    def __init__(self, namespace: str, name: str, every: int):
        self._namespace, self._name, self._every = namespace, name, every
        self._counter = Metrics.counter(namespace, name)

    def setup(self):
        self._seen = 0
        self._start = time.monotonic()

    def process(self, element):
        self._counter.inc()
        self._seen += 1
        if self._seen % self._every == 0:
            rate = self._seen / max(time.monotonic() - self._start, 1e-9)
            logging.info("%s/%s: %d elements on this worker (%.1f/s)", self._namespace, self._name,
                         self._seen, rate)
        yield element


class LogProgress(beam.PTransform):
    """Pass-through step that counts elements in a counter and logs every `every` of them."""

    def __init__(self, namespace: str, name: str, every: int = 1000):
        super().__init__()
        self._fn = _LogProgressFn(namespace, name, every)

    def expand(self, pcoll):
        return pcoll | beam.ParDo(self._fn)
