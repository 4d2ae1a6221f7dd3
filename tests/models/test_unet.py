"""The U-Net family: tiny variant shapes, the inference contract, nodata filling, the shipped weights."""
import os

import jax
import numpy as np

from tessera.models import unet

WEIGHTS = os.path.join(os.path.dirname(unet.__file__), "weights", "unet_buildings.msgpack")


def test_tiny_shapes_and_param_count():
    model = unet.Model(**unet.TINY_CONFIG)
    params = unet.init_params(model)
    assert unet.config_from_params(params) == unet.TINY_CONFIG
    # enc0 (3->4, 4->4), enc1 (4->8, 8->8), bottleneck (8->8 x2), dec1 (16->8, 8->8), dec0 (12->4, 4->4),
    # 3x3 convs with bias, GroupNorm scale+bias, 1x1 head
    convs = [(3, 4), (4, 4), (4, 8), (8, 8), (8, 8), (8, 8), (16, 8), (8, 8), (12, 4), (4, 4)]
    expected = sum(9 * i * o + o + 2 * o for i, o in convs) + 4 + 1
    assert unet.count_params(params) == expected
    logits = jax.jit(lambda p, x: unet.logits_fn(model, p, x))(params, np.zeros((2, 32, 48, 3), np.float32))
    assert logits.shape == (2, 32, 48)


def test_load_contract_roundtrip(tmp_path):
    from tessera.models import params_io
    from tessera.models.base import JaxModel

    params = unet.init_params(unet.Model(**unet.TINY_CONFIG), seed=3)
    path = str(tmp_path / "tiny.msgpack")
    params_io.save_params(path, jax.tree_util.tree_map(lambda a: np.asarray(a, np.float16), params))
    jm = unet.load(path)
    assert isinstance(jm, JaxModel)
    batch = np.random.default_rng(0).random((3, 16, 32, 3), dtype=np.float32)
    out = np.asarray(jax.jit(jm.apply_fn)(jm.params, batch))
    assert out.shape == (3, 16, 32) and out.dtype == np.float32
    assert ((out >= 0) & (out <= 1)).all()


def test_fill_nodata_mirrors_rectangular_padding_and_keeps_valid_pixels():
    rng = np.random.default_rng(1)
    data = rng.uniform(0.1, 1.0, (20, 24, 3)).astype(np.float32)
    data[3, 4] = 0.0  # a black pixel inside the data is data, not nodata
    canvas = np.zeros((32, 48, 3), np.float32)
    canvas[5:25, 10:34] = data
    filled = np.asarray(jax.jit(unet.fill_nodata)(canvas[None]))[0]
    expected = np.pad(data, ((5, 7), (10, 14), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(filled, expected)
    np.testing.assert_array_equal(filled[5:25, 10:34], data)


def test_fill_nodata_holes_get_mean_and_all_valid_is_identity():
    x = np.full((1, 16, 16, 3), 0.5, np.float32)
    x[0, 4:10, 4:10] = 0.0  # hole inside the valid bounding box
    fill = jax.jit(unet.fill_nodata)
    out = np.asarray(fill(x))
    np.testing.assert_allclose(out, 0.5)
    y = np.random.default_rng(2).uniform(0.01, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fill(y)), y)


def test_shipped_weights_load_and_find_a_building():
    assert os.path.exists(WEIGHTS), f"the shipped weights {WEIGHTS} are part of the package"
    from tessera.training.buildings.scenes import render_scene

    assert os.path.getsize(WEIGHTS) < 5 * 2**20
    jm = unet.load(WEIGHTS)
    assert unet.config_from_params(jm.params) == unet.DEFAULT_CONFIG
    scene = render_scene(4242, 128)
    prob = np.asarray(jax.jit(jm.apply_fn)(jm.params, scene.image[None].astype(np.float32) / 255))[0]
    assert prob.shape == (128, 128)
    pred, truth = prob > 0.5, scene.mask
    iou = (pred & truth).sum() / max((pred | truth).sum(), 1)
    assert iou > 0.7  # an unseen seed; the benchmark measures instance F1/AP50 properly
