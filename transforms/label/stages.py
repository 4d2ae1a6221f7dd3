"""The stages of `tessera label` between reading bytes and writing Parquet.

    (key, bytes) -> BatchBySizeBucket -> [LabelRequest, ...] (one size bucket per batch)
                 -> LabelBatches (RunInference(...).with_exception_handling()) -> LabelResult
                 -> WriteLabelShards -> labels/part-<digest>.parquet

Batches are formed before decoding, from header-only size probes keyed by (size bucket, shard),
so the shuffle carries compressed bytes and every batch the model sees has one bucket shape.
RunInference receives those ready-made batches through `PrebatchedHandler`, which leaves
RunInference's own batching at one element; the model handler still gets a list of requests.
"""
from __future__ import annotations

import hashlib
import io
import time
from typing import Any, Iterable, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.transforms import window

from tessera.schemas.labels import LABEL_SCHEMA, LabelRequest, LabelResult
from tessera.schemas.records import DeadLetter
from tessera.transforms.label import decode as label_decode
from tessera.transforms.label.inputs import DEAD, NAMESPACE

# ---- batching by size bucket ---------------------------------------------------------------


def bucket_key(key: str, height: int, width: int, num_shards: int) -> str:
    """'<bucket>/<shard>': the bucket fixes the batch shape, the stable shard spreads a big
    bucket over workers (one grouped key is processed by one worker)."""
    digest = hashlib.md5(key.encode("utf-8")).digest()
    shard = int.from_bytes(digest[:4], "big") % max(num_shards, 1)
    return f"{label_decode.size_bucket(height, width)}/{shard}"


class _ProbeFn(beam.DoFn):
    def __init__(self, num_shards: int, max_pixels: int):
        self._num_shards, self._max_pixels = num_shards, max_pixels

    def process(self, element):
        key, data = element
        try:
            height, width = label_decode.probe_size(data, max_pixels=self._max_pixels)
        except label_decode.ImageDecodeError as e:
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(key, "decode", e.reason, e.detail))
            return
        yield bucket_key(key, height, width, self._num_shards), (key, data)


class _DecodeBatchesFn(beam.DoFn):
    """(bucket/shard, iterable of (key, bytes)) -> decoded batches of `batch_size` requests.

    A plain GroupByKey plus chunking, rather than GroupIntoBatches: no state or timers, so the
    portable runner runs it (the local DirectRunner otherwise falls back to its legacy runner)
    and the grouped iterable is streamed, never held whole.
    """

    def __init__(self, batch_size: int, prompt: str, max_pixels: int):
        self._batch_size, self._prompt, self._max_pixels = batch_size, prompt, max_pixels
        self._batches = Metrics.counter(NAMESPACE, "batches")

    def process(self, element):
        _, items = element
        requests = []
        for key, data in items:
            try:
                image = label_decode.decode_image(data, max_pixels=self._max_pixels)
            except label_decode.ImageDecodeError as e:
                yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(key, "decode", e.reason, e.detail))
                continue
            requests.append(LabelRequest(key=key, image=image, prompt=self._prompt))
            if len(requests) == self._batch_size:
                self._batches.inc()
                yield requests
                requests = []
        if requests:
            self._batches.inc()
            yield requests


class BatchBySizeBucket(beam.PTransform):
    """(key, bytes) -> lists of decoded LabelRequests of one size bucket; .main and .dead."""

    def __init__(self, batch_size: int, *, prompt: str = "", num_shards: int = 16,
                 max_pixels: int = label_decode.DEFAULT_MAX_PIXELS):
        super().__init__()
        self._batch_size, self._prompt = batch_size, prompt
        self._num_shards, self._max_pixels = num_shards, max_pixels

    def expand(self, keyed_bytes):
        probed = keyed_bytes | "Probe" >> beam.ParDo(
            _ProbeFn(self._num_shards, self._max_pixels)).with_outputs(DEAD, main="main")
        decoded = (probed.main
                   | "GroupByBucket" >> beam.GroupByKey()
                   | "DecodeBatches" >> beam.ParDo(
                       _DecodeBatchesFn(self._batch_size, self._prompt, self._max_pixels))
                   .with_outputs(DEAD, main="main"))
        dead = (probed.dead, decoded.dead) | "FlattenDecodeDead" >> beam.Flatten()
        return {"main": decoded.main, "dead": dead}


# ---- inference -----------------------------------------------------------------------------


class PrebatchedHandler(ModelHandler[list, list, Any]):
    """Wraps a LabelRequest handler so each RunInference example is one ready-made batch."""

    def __init__(self, inner: ModelHandler):
        super().__init__(min_batch_size=1, max_batch_size=1)
        self._inner = inner

    def load_model(self):
        return self._inner.load_model()

    def run_inference(self, batch: Sequence[list], model: Any,
                      inference_args: dict | None = None) -> Iterable[list]:
        for requests in batch:
            outputs = self._inner.run_inference(requests, model, inference_args)
            yield [o.inference if isinstance(o, PredictionResult) else o for o in outputs]

    def get_num_bytes(self, batch: Sequence[list]) -> int:
        return sum(int(r.image.nbytes) for requests in batch for r in requests)

    def get_metrics_namespace(self) -> str:
        return self._inner.get_metrics_namespace()

    def get_resource_hints(self) -> dict:
        return self._inner.get_resource_hints()

    def share_model_across_processes(self) -> bool:
        return self._inner.share_model_across_processes()

    def model_copies(self) -> int:
        return self._inner.model_copies()


def error_reason(error: str) -> str:
    """'ocr_failed: RuntimeError: ...' -> 'ocr_failed' (the counter/dead-letter token)."""
    token = error.split(":", 1)[0].strip()
    return token if token and " " not in token else "model_error"


class _SplitResultsFn(beam.DoFn):
    def __init__(self):
        self._labelled = Metrics.counter(NAMESPACE, "labelled")

    def process(self, results):
        for result in results:
            if result.error is None:
                self._labelled.inc()
                yield result
            else:
                yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                    result.key, "model", error_reason(result.error), result.error))


def _failed_batch_letters(failure):
    batches, error = failure
    detail = repr(error)[:2000]
    for requests in batches if batches and isinstance(batches[0], list) else [batches]:
        for request in requests:
            yield DeadLetter(request.key, "model", "inference_failed", detail)


class LabelBatches(beam.PTransform):
    """Batches of LabelRequests -> LabelResults (.main) and DeadLetters (.dead)."""

    def __init__(self, handler: ModelHandler, accelerator: str | None = None):
        super().__init__()
        self._handler, self._accelerator = handler, accelerator

    def expand(self, batches):
        inference = RunInference(PrebatchedHandler(self._handler))
        if self._accelerator:
            inference = inference.with_resource_hints(accelerator=self._accelerator)
        main, failed = batches | "RunInference" >> inference.with_exception_handling()
        split = main | "Split" >> beam.ParDo(_SplitResultsFn()).with_outputs(DEAD, main="main")
        failed_letters = (failed.failed_inferences
                          | "FailedBatches" >> beam.FlatMap(_failed_batch_letters))
        dead = (split.dead, failed_letters) | "FlattenModelDead" >> beam.Flatten()
        return {"main": split.main, "dead": dead}


# ---- output ------------------------------------------------------------------------------


def shard_name(keys: Iterable[str]) -> str:
    """Content-addressed shard name: a retried bundle rewrites the same file, never a twin."""
    digest = hashlib.sha1("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:20]
    return f"part-{digest}.parquet"


def rows_to_parquet(rows: list[dict]) -> bytes:
    """Rows -> Parquet bytes, checked against LABEL_SCHEMA (raises on a contract break)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.Table.from_pylist(rows, schema=LABEL_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class _WriteShardsFn(beam.DoFn):
    """Buffers rows; a shard every `rows_per_shard` rows or `flush_s` seconds (so a kill loses
    at most that much of a long bundle, and --resume skips the rest), and at the bundle's end."""

    def __init__(self, directory: str, rows_per_shard: int, flush_s: float):
        self._directory, self._rows_per_shard, self._flush_s = directory, rows_per_shard, flush_s

    def start_bundle(self):
        self._rows, self._since = [], time.monotonic()

    def process(self, result: LabelResult):
        self._rows.append(result.to_row())
        if (len(self._rows) >= self._rows_per_shard
                or time.monotonic() - self._since >= self._flush_s):
            yield self._flush()

    def finish_bundle(self):
        if self._rows:
            yield window.GlobalWindows.windowed_value(self._flush())

    def _flush(self) -> str:
        from tessera.fileio import atomic_write_bytes, join
        rows, self._rows, self._since = self._rows, [], time.monotonic()
        path = join(self._directory, shard_name(r["key"] for r in rows))
        atomic_write_bytes(path, rows_to_parquet(rows))
        Metrics.counter(NAMESPACE, "shards_written").inc()
        return path


class WriteLabelShards(beam.PTransform):
    """LabelResults -> atomically written Parquet shards in `directory`; returns their paths."""

    def __init__(self, directory: str, rows_per_shard: int = 5000, flush_s: float = 60.0):
        super().__init__()
        self._fn = _WriteShardsFn(directory, rows_per_shard, flush_s)

    def expand(self, results):
        return results | "WriteShards" >> beam.ParDo(self._fn)
