"""RunModelStage: the one way a workload calls a model, with validation and dead letters.

(key, example) -> (key, output). A malformed record is caught before batching (reason
"invalid_example"); a record the model fails on is isolated by the handler (reason
"inference_failed"); a batch that fails as a whole (model load, out of memory) reaches RunInference's
own dead-letter output and each of its records becomes a DeadLetter ("batch_failed"). Nothing is
dropped silently, and each reason has a counter.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.metrics import Metrics

from tessera.models.handlers.jax_model import InferenceError
from tessera.schemas.records import DeadLetter

DEAD = "dead"


class ModelStageOutputs(NamedTuple):
    outputs: beam.PCollection
    dead_letters: beam.PCollection


class _ValidateFn(beam.DoFn):
    def __init__(self, stage: str, validate: Callable[[Any], str | None]):
        self._stage, self._validate = stage, validate
        self._bad = Metrics.counter(stage, "invalid_example")

    def process(self, element):
        key, example = element
        problem = self._validate(example)
        if problem is None:
            yield element
        else:
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(str(key), self._stage, "invalid_example", problem))


class _SplitResultsFn(beam.DoFn):
    def __init__(self, stage: str):
        self._stage = stage
        self._ok = Metrics.counter(stage, "inferred")
        self._failed = Metrics.counter(stage, "inference_failed")

    def process(self, element):
        key, result = element
        if isinstance(result.inference, InferenceError):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD, DeadLetter(str(key), self._stage, result.inference.reason, result.inference.detail))
        else:
            self._ok.inc()
            yield key, result.inference


def _batch_failures(failure, stage: str):
    batch, error = failure
    Metrics.counter(stage, "batch_failed").inc(len(batch))
    detail = repr(error[1]) if isinstance(error, tuple) and len(error) > 1 else repr(error)
    for key, _ in batch:
        yield DeadLetter(str(key), stage, "batch_failed", detail)


def _no_check(_example) -> None:
    return None


class RunModelStage(beam.PTransform):
    """Validate, batch, infer; returns ModelStageOutputs(outputs, dead_letters).

    Args:
      handler: an unkeyed ModelHandler (JaxModelHandler, a TF handler, ...).
      stage: name used for counters and in DeadLetter.stage.
      validate: `example -> reason | None`; defaults to `handler.validate_example` when present.
    """

    def __init__(self, handler, stage: str = "model", validate: Callable[[Any], str | None] | None = None):
        super().__init__()
        self._handler = handler
        self._stage = stage
        self._validate = validate or getattr(handler, "validate_example", None) or _no_check

    def expand(self, keyed_examples):
        checked = keyed_examples | "Validate" >> beam.ParDo(
            _ValidateFn(self._stage, self._validate)).with_outputs(DEAD, main="ok")
        results, dlq = (checked.ok
                        | "RunInference" >> RunInference(KeyedModelHandler(self._handler))
                        .with_exception_handling())
        split = results | "SplitFailures" >> beam.ParDo(_SplitResultsFn(self._stage)).with_outputs(DEAD, main="ok")
        batch_dead = dlq.failed_inferences | "BatchFailures" >> beam.FlatMap(_batch_failures, self._stage)
        dead = (checked[DEAD], split[DEAD], batch_dead) | "DeadLetters" >> beam.Flatten()
        return ModelStageOutputs(split.ok, dead)
