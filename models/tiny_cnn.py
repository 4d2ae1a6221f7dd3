"""A small image classifier: the stand-in model for model-stage tests and benchmarks."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from tessera.models.base import JaxModel
from tessera.models.params_io import load_params, save_params


class Model(nn.Module):
    """Conv-Conv-Pool-Dense CNN; `features` sets the width."""
    num_classes: int = 10
    features: int = 32

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.features, (3, 3), strides=2)(x))
        x = nn.relu(nn.Conv(self.features * 2, (3, 3), strides=2)(x))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


def init_params(seed: int = 0, image_size: int = 32, channels: int = 3, **kwargs):
    model = Model(**kwargs)
    return model.init(jax.random.PRNGKey(seed), jnp.zeros((1, image_size, image_size, channels)))["params"]


def _apply(params, batch):
    return jax.nn.softmax(Model(num_classes=params["Dense_0"]["bias"].shape[0],
                                features=params["Conv_0"]["bias"].shape[0]).apply({"params": params}, batch))


def load(path: str) -> JaxModel:
    params = load_params(path)
    channels = params["Conv_0"]["kernel"].shape[2]
    return JaxModel(apply_fn=_apply, params=params, input_shape=(None, None, channels), name="tiny_cnn")


def save(path: str, params) -> None:
    save_params(path, params)
