"""A Beam `ModelHandler` for JAX models: the accelerated, batched model stage of every workload.

RunInference brings batching, model sharing and metrics; this handler adds what JAX needs:
one jit per padded shape (batches are padded up to a few bucket sizes, so a ragged tail batch does
not recompile), parameters loaded from msgpack/npz on local disk or GCS, an accelerator resource
hint for the stage, and per-example isolation: when a batch fails, its examples are retried one by
one so a single bad record becomes one `InferenceError` instead of taking its neighbours down.
"""
from __future__ import annotations

import bisect
import dataclasses
import logging
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tessera.models.base import JaxModel


@dataclasses.dataclass(frozen=True)
class InferenceError:
    """Stands in for the output of an example the model could not run on."""
    reason: str
    detail: str


class LoadedJaxModel:
    """A loaded model: jitted apply, device-resident params, and the padded shapes compiled so far."""

    def __init__(self, model: JaxModel):
        import jax
        self.model = model
        self.params = jax.device_put(model.params)
        self.apply = jax.jit(model.apply_fn)
        self.compiled_shapes: set[tuple] = set()

    def __call__(self, batch: np.ndarray):
        import jax
        self.compiled_shapes.add(batch.shape)
        return jax.device_get(self.apply(self.params, batch))


def check_example(example: Any, shape: tuple | None) -> str | None:
    """Why `example` cannot go to the model (None if it can). Cheap: numeric dtype and shape only."""
    try:
        array = np.asarray(example)
    except Exception as e:  # noqa: BLE001 - any conversion failure is a malformed record
        return f"not an array: {e}"
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return f"non-numeric dtype {array.dtype}"
    if shape is not None:
        if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
            return f"shape {array.shape} does not match {shape}"
    return None  # any numeric array casts to the model dtype; no need to copy it to find out


def bucket_for(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n (buckets sorted ascending; n <= buckets[-1])."""
    return buckets[bisect.bisect_left(buckets, n)]


class JaxModelHandler(ModelHandler[Any, PredictionResult, LoadedJaxModel]):
    """Runs `load_fn(model_path)`'s JaxModel on batches of per-example numpy arrays.

    Args:
      load_fn: module-level function `path -> JaxModel` (it is pickled by reference).
      model_path: parameter file or directory the load_fn understands; local or gs://.
      bucket_sizes: batch sizes compiled; each batch is padded up to the next one.
      min_batch_size, max_batch_size: passed to Beam's BatchElements.
      accelerator: Beam resource hint, e.g. "type:nvidia-l4;count:1;install-nvidia-driver".
      share_across_processes: one model per machine shared by all SDK processes (big models).
      example_shape: per-example shape that RunModelStage validates records against before
        batching (the model's own input_shape is only known after loading, on the worker).
    """

    def __init__(self, load_fn: Callable[[str], JaxModel], model_path: str, *,
                 bucket_sizes: Iterable[int] = (1, 8, 32, 64), min_batch_size: int = 1,
                 max_batch_size: int = 64, accelerator: str | None = None,
                 share_across_processes: bool = False, example_shape: tuple | None = None,
                 example_dtype: str = "float32", max_batch_duration_secs: int | None = None):
        super().__init__()
        self._load_fn = load_fn
        self._model_path = model_path
        self._buckets = tuple(sorted(set(int(b) for b in bucket_sizes) | {max_batch_size}))
        self._buckets = tuple(b for b in self._buckets if b <= max_batch_size)
        self._accelerator = accelerator
        self._share = share_across_processes
        self.example_shape = example_shape
        self.example_dtype = example_dtype
        self._batching_kwargs = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        if max_batch_duration_secs is not None:
            self._batching_kwargs["max_batch_duration_secs"] = max_batch_duration_secs

    @property
    def model_path(self) -> str:
        return self._model_path

    def load_model(self) -> LoadedJaxModel:
        model = self._load_fn(self._model_path)
        logging.info("JaxModelHandler: loaded %s from %s", model.name, self._model_path)
        return LoadedJaxModel(model)

    def run_inference(self, batch: Sequence[Any], model: LoadedJaxModel,
                      inference_args: dict | None = None) -> list[PredictionResult]:
        model_id = self._model_path
        try:
            outputs = self._run_padded(batch, model)
        except Exception as e:  # noqa: BLE001 - isolate the failing examples below
            if len(batch) == 1:
                return [PredictionResult(batch[0], InferenceError("inference_failed", repr(e)), model_id)]
            logging.warning("batch of %d failed (%r); retrying examples one by one", len(batch), e)
            return [r for example in batch for r in self.run_inference([example], model)]
        return [PredictionResult(x, y, model_id) for x, y in zip(batch, outputs)]

    def _run_padded(self, batch: Sequence[Any], model: LoadedJaxModel) -> list:
        import jax
        dtype = model.model.input_dtype or self.example_dtype
        results = []
        top = self._buckets[-1]
        for start in range(0, len(batch), top):
            chunk = np.stack([np.asarray(x, dtype=dtype) for x in batch[start:start + top]])
            n = len(chunk)
            size = bucket_for(n, self._buckets)
            if size > n:
                pad = np.zeros((size - n,) + chunk.shape[1:], dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = model(chunk)
            results.extend(jax.tree_util.tree_map(lambda a, i=i: np.asarray(a[i]), out) for i in range(n))
        return results

    def validate_example(self, example: Any) -> str | None:
        return check_example(example, self.example_shape)

    def get_num_bytes(self, batch: Sequence[Any]) -> int:
        return sum(np.asarray(x).nbytes for x in batch)

    def get_metrics_namespace(self) -> str:
        return "JaxModelHandler"

    def get_resource_hints(self) -> dict:
        return {"accelerator": self._accelerator} if self._accelerator else {}

    def share_model_across_processes(self) -> bool:
        return self._share

    def batch_elements_kwargs(self):
        return self._batching_kwargs
