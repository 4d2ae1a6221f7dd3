"""A ModelHandler whose `load_model` returns a model already loaded in this process.

`benchmarks/label.py --reuse-model` runs the pipeline on the model its plain loop loaded and
compiled, so a few thousand images compare per-image throughput, not one multi-GB load and XLA
compile per round (that one-time cost is measured and reported beside the ratio). It lives in its
own importable module so Beam pickles the class by reference and the model by key, never by value.
Only for the in-process DirectRunner.
"""
from __future__ import annotations

from typing import Any, Callable

from apache_beam.ml.inference.base import ModelHandler

MODELS: dict[str, Any] = {}  # key -> loaded model, filled by the benchmark before the run


class PreloadedHandler(ModelHandler):
    """Delegates everything to `inner` except loading: `MODELS[key]` instead."""

    def __init__(self, inner: ModelHandler, key: str):
        super().__init__()
        self._inner, self._key = inner, key

    def load_model(self):
        return MODELS[self._key]

    def run_inference(self, batch, model, inference_args=None):
        return self._inner.run_inference(batch, model, inference_args)

    def get_num_bytes(self, batch) -> int:
        return self._inner.get_num_bytes(batch)

    def get_metrics_namespace(self) -> str:
        return self._inner.get_metrics_namespace()

    def get_resource_hints(self) -> dict:
        return self._inner.get_resource_hints()

    def batch_elements_kwargs(self):
        return self._inner.batch_elements_kwargs()

    def share_model_across_processes(self) -> bool:
        return self._inner.share_model_across_processes()

    def model_copies(self) -> int:
        return self._inner.model_copies()


def wrapping(make_handler: Callable[..., ModelHandler], key: str) -> Callable[..., ModelHandler]:
    """`make_handler` whose handlers take the preloaded `MODELS[key]`."""
    def make(*args, **kwargs) -> ModelHandler:
        return PreloadedHandler(make_handler(*args, **kwargs), key)
    return make
