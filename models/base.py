"""The one small face every JAX model family exposes to the model stage (big_vision style)."""
from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
SHIPPED_UNET = os.path.join(WEIGHTS_DIR, "unet_buildings.msgpack")  # `tessera buildings` default


class JaxModel(NamedTuple):
    """What `models.<family>.load(path)` returns.

    apply_fn: pure `(params, batch) -> outputs` (any pytree with a leading batch axis); jit-able.
    params: the parameter pytree (numpy or jax arrays).
    input_shape: per-example shape (None entries = any size), used to reject malformed records
        before they reach the model; None to skip the check.
    input_dtype: dtype examples are cast to before stacking.
    name: identifies the model in metrics and manifests.
    """
    apply_fn: Callable[[Any, Any], Any]
    params: Any
    input_shape: tuple | None = None
    input_dtype: str = "float32"
    name: str = "jax_model"
