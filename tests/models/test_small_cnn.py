"""The zoo CNN: layout, flatten/unflatten, flax == functional forward, and a Keras reload of a zoo row."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tessera.models import small_cnn, zoo_weights

RELEASED_LAYOUT = """varname,start_idx,end_idx,shape
sequential/conv2d/bias:0,0,16,"(16,)"
sequential/conv2d/kernel:0,16,160,"(3, 3, 1, 16)"
sequential/conv2d_1/bias:0,160,176,"(16,)"
sequential/conv2d_1/kernel:0,176,2480,"(3, 3, 16, 16)"
sequential/conv2d_2/bias:0,2480,2496,"(16,)"
sequential/conv2d_2/kernel:0,2496,4800,"(3, 3, 16, 16)"
sequential/dense/bias:0,4800,4810,"(10,)"
sequential/dense/kernel:0,4810,4970,"(16, 10)"
"""


def test_layout_matches_the_release_and_has_4970_params():
    assert small_cnn.NUM_PARAMS == 4970
    assert small_cnn.layout_csv() == RELEASED_LAYOUT
    assert zoo_weights.parse_layout_csv(RELEASED_LAYOUT) == small_cnn.layout()


def test_malformed_layout_is_rejected():
    with pytest.raises(ValueError):
        zoo_weights.parse_layout_csv("varname,start_idx,end_idx,shape\nsequential/dense/bias:0,0,11,(10,)\n")


def test_flatten_unflatten_round_trip_and_batched():
    params = small_cnn.init_params(seed=1)
    flat = np.asarray(small_cnn.flatten(params))
    assert flat.shape == (4970,)
    assert np.array_equal(flat[:16], params["conv2d"]["bias"])  # bias before kernel
    assert np.array_equal(flat[16:160], params["conv2d"]["kernel"].reshape(-1))
    back = small_cnn.unflatten(flat)
    assert all(np.array_equal(back[l][v], params[l][v]) for l in params for v in params[l])
    batched = jax.vmap(small_cnn.flatten)(jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a]), params))
    assert np.allclose(batched[1], 2 * flat)


def test_flax_module_and_patch_convolution_match_lax():
    params = small_cnn.init_params(seed=2)
    x = jax.random.uniform(jax.random.PRNGKey(0), (3, 28, 28, 1), minval=-1, maxval=1)
    ref = small_cnn.Model().apply({"params": params}, x)
    assert ref.shape == (3, 10)
    np.testing.assert_allclose(small_cnn.apply(params, x), ref, atol=1e-5)
    kernel = params["conv2d_1"]["kernel"]
    h = jax.random.normal(jax.random.PRNGKey(1), (2, 13, 13, 16))
    lax = jax.lax.conv_general_dilated(h, kernel, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(small_cnn.conv3x3_stride2(h, kernel), lax, atol=1e-4)


def _keras_model(activation: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    layers = [tf.keras.Input((28, 28, 1))]
    for name in small_cnn.CONV_LAYERS:
        layers += [tf.keras.layers.Conv2D(16, 3, strides=2, padding="valid", activation=activation, name=name),
                   tf.keras.layers.Dropout(0.5)]
    layers += [tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(10, name="dense")]
    return tf.keras.Sequential(layers)


def test_keras_reproduces_recorded_test_accuracy_from_a_zoo_row(tmp_path):
    from tessera.transforms.zoo import release as zoo_release
    from tessera.transforms.zoo import sampling as zoo_sampling
    from tessera.training.zoo import stages as zoo_stages
    from tessera.training.zoo import population as zoo_population
    from tessera.transforms.zoo.datasets import load_dataset
    dataset = load_dataset("digits")
    pop = zoo_sampling.populations(7, 2, 1)[1]
    configs = [zoo_sampling.sample_network(7, i) for i in pop.indices]
    result = zoo_population.train_population(configs, dataset, zoo_seed=7, epochs=1, optimizer=pop.optimizer,
                                           activation=pop.activation, w_init=pop.w_init)
    rows = zoo_stages.population_rows(pop, configs, result, "digits")
    shard = zoo_release.write_shard(str(tmp_path), pop.name, result.weights.reshape(-1, 4970), rows)
    zoo_release.assemble(str(tmp_path), [shard])
    zoo_release.write_layout(str(tmp_path))
    (tmp_path / "dataset.json").write_text(json.dumps(dataset.description()))

    table = zoo_release.read_layout(str(tmp_path))
    weights = np.load(tmp_path / "weights.npy")
    metrics = zoo_release.read_metrics(str(tmp_path))
    row = len(metrics) - 1  # final checkpoint
    params = small_cnn.unflatten(weights[row], table)
    model = _keras_model(pop.activation)
    for name in small_cnn.LAYERS:
        model.get_layer(name).set_weights([params[name]["kernel"], params[name]["bias"]])
    test = np.array(json.loads((tmp_path / "dataset.json").read_text())["test_indices"])
    logits = model.predict(dataset.images[test], verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == dataset.labels[test]))
    assert metrics["step"].iloc[row] == 1
    assert accuracy == pytest.approx(metrics["test_accuracy"].iloc[row], abs=1.5 / len(test))
    assert 0.0 < accuracy < 1.0

    # `ZOO/weights.npy#ROW`, what `small_cnn:` model paths name, loads that row and only that row.
    loaded = small_cnn.load(f"{tmp_path}/weights.npy#{row}", activation=pop.activation)
    for name in small_cnn.LAYERS:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(loaded.params[name][leaf], params[name][leaf])
    jax_logits = np.asarray(loaded.apply_fn(loaded.params, dataset.images[test]))
    assert float(np.mean(np.argmax(jax_logits, -1) == dataset.labels[test])) == pytest.approx(
        metrics["test_accuracy"].iloc[row], abs=1.5 / len(test))
    first = small_cnn.load(f"{tmp_path}/weights.npy#0", activation=pop.activation)
    assert not np.array_equal(first.params["dense"]["kernel"], loaded.params["dense"]["kernel"])
    with pytest.raises(zoo_weights.ZooFormatError, match="asked for row"):
        small_cnn.load(f"{tmp_path}/weights.npy#{len(weights)}")


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.7])
def test_dropout_keeps_the_right_fraction_and_rescales(rate):
    x = jnp.ones((64, 13, 13, 16))
    out = np.asarray(small_cnn._dropout(x, jnp.float32(rate), jax.random.PRNGKey(3)))
    kept = out != 0
    assert kept.mean() == pytest.approx(1.0 - rate, abs=0.01)
    np.testing.assert_allclose(out[kept], 1.0 / (1.0 - rate), rtol=1e-6)
    other = np.asarray(small_cnn._dropout(x, jnp.float32(rate), jax.random.PRNGKey(4)))
    assert rate == 0.0 or not np.array_equal(kept, other != 0)  # the mask follows the key
