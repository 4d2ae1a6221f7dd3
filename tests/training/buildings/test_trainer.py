"""Training recipe pieces (separation weights, chips, mixup, losses) and tiny `buildings-train` runs."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tessera.training.buildings import augment as aug
from tessera.training.buildings import data as bt


def test_separation_weights_peak_in_the_gap_between_buildings():
    inst = np.zeros((12, 20), np.int32)
    inst[3:9, 2:8] = 1
    inst[3:9, 10:16] = 2  # 2-pixel gap at columns 8, 9
    w = bt.separation_weights(inst, w0=10.0, sigma=5.0)
    # gap pixel next to both: d1 = 1, d2 = 2 -> 1 + 10 exp(-9/50)
    assert w[5, 8] == pytest.approx(1 + 10 * np.exp(-9 / 50), rel=1e-5)
    assert w[5, 8] > 8.0
    assert (w[inst > 0] == 1.0).all()  # buildings themselves unweighted
    assert w[0, 19] < w[5, 8] / 2  # open ground far from the pair


def test_separation_weights_single_building_is_flat():
    inst = np.zeros((10, 10), np.int32)
    inst[2:5, 2:5] = 1
    np.testing.assert_allclose(bt.separation_weights(inst), 1.0)  # no second building, no d2


def test_chip_tiles_pads_with_zero_weight():
    tile = bt.Tile(image=np.ones((48, 70, 3), np.uint8), mask=np.ones((48, 70), np.uint8),
                   weights=np.full((48, 70), 2.0, np.float32))
    chips = bt.chip_tiles([tile], 32)
    # chip starts: rows 0, 32 (16 rows left) x cols 0, 32; col 64 (6 left, < chip/4) is dropped
    assert chips["image"].shape == (4, 32, 32, 3)
    assert chips["weights"][2, 16:].sum() == 0 and chips["weights"][2, :16].min() == 2.0
    assert chips["weights"][0].min() == 2.0 and chips["mask"][3, :16, :6].all()
    unl = bt.chip_tiles([bt.Tile(image=np.ones((20, 20, 3), np.uint8))], 32)
    assert "mask" not in unl and unl["weights"][0, :20, :20].min() == 1 and unl["weights"][0, 20:].max() == 0


def test_mixup_blends_images_and_targets_alike():
    batch = {"image": jnp.stack([jnp.zeros((4, 4, 3)), jnp.ones((4, 4, 3))]),
             "mask": jnp.stack([jnp.zeros((4, 4)), jnp.ones((4, 4))]),
             "weights": jnp.stack([jnp.ones((4, 4)), jnp.full((4, 4), 3.0)])}
    out = aug.mixup(batch, np.array([0.75, 0.6], np.float32), np.array([1, 0]))
    np.testing.assert_allclose(np.asarray(out["image"])[0], 0.25)  # 0.75 * 0 + 0.25 * 1
    np.testing.assert_allclose(np.asarray(out["image"])[1], 0.6)
    np.testing.assert_allclose(np.asarray(out["mask"]), np.asarray(out["image"])[..., 0])  # same lambda
    np.testing.assert_allclose(np.asarray(out["weights"])[0], 0.75 * 1 + 0.25 * 3)


def test_mixup_params_fold_lambda_to_own_content():
    lam, perm = aug.mixup_params(np.random.default_rng(0), 1000, alpha=0.4)
    assert lam.min() >= 0.5 and lam.max() <= 1.0
    assert sorted(perm) == list(range(1000))
    assert (lam > 0.9).mean() > 0.3  # Beta(0.4, 0.4) is U-shaped: many mild mixes, some strong ones


def test_sample_crops_dihedral_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    mask = (rng.random((1, 16, 16)) > 0.5).astype(np.uint8)
    chips = {"image": np.repeat(mask[..., None] * 255, 3, axis=-1).astype(np.uint8), "mask": mask,
             "weights": np.ones((1, 16, 16), np.float32)}
    b = aug.sample_crops(jax.random.PRNGKey(1), chips, 8, 8)
    np.testing.assert_array_equal(np.asarray(b["image"][..., 0]), np.asarray(b["mask"]))


def test_losses():
    from tessera.training.buildings.trainer import bernoulli_kl, weighted_bce

    logits = jnp.array([[0.0, 2.0]])
    assert float(bernoulli_kl(jax.nn.sigmoid(logits), logits)) == pytest.approx(0.0, abs=1e-6)
    assert float(bernoulli_kl(jnp.array([[0.9, 0.1]]), logits)) > 0.1
    y, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 3.0]])
    per_pixel = -np.array([np.log(0.5), np.log(1 - 1 / (1 + np.exp(-2.0)))])
    assert float(weighted_bce(logits, y, w)) == pytest.approx((per_pixel[0] + 3 * per_pixel[1]) / 4, rel=1e-5)


TINY = ["--tiny", "--steps", "3", "--student-steps", "2", "--batch-size", "2", "--crop", "32", "--chip", "64",
        "--log-every", "1", "--processes", "1"]


def _card(path):
    with open(str(path).replace(".msgpack", ".json")) as f:
        return json.load(f)


def test_train_tiny_with_mixup_and_self_training(tmp_path):
    from tessera.models import unet
    from tessera.pipelines import buildings_train

    out = tmp_path / "m.msgpack"
    assert buildings_train.main(["--synthetic-seeds", "0:2", "--synthetic-unlabelled-seeds", "7",
                                 "--synthetic-size", "64", "--output", str(out), *TINY]) == 0
    card = _card(out)
    assert card["config"]["mixup"] is True and card["config"]["self_training"] is True
    assert card["phases"] == {"teacher": {"steps": 3}, "student": {"steps": 2}}
    assert {r["phase"] for r in card["history"]} == {"teacher", "student"}
    assert all(np.isfinite(r["loss"]) for r in card["history"])
    assert "kl" in card["history"][-1]
    assert (tmp_path / "m.teacher.msgpack").exists()
    assert unet.config_from_params(unet.load(str(out)).params) == unet.TINY_CONFIG


def test_checkpoint_every_leaves_snapshots_to_select_on_dev_data(tmp_path):
    """--checkpoint-every 2 on a 3-step teacher and 2-step student: one snapshot per phase, each a
    loadable model, the student's equal to the final weights."""
    from tessera.models import unet
    from tessera.pipelines import buildings_train

    out = tmp_path / "m.msgpack"
    assert buildings_train.main(["--synthetic-seeds", "0:2", "--synthetic-unlabelled-seeds", "7",
                                 "--synthetic-size", "64", "--output", str(out), "--checkpoint-every",
                                 "2", *TINY]) == 0
    snapshots = sorted(p.name for p in tmp_path.glob("m.*-*.msgpack"))
    assert snapshots == ["m.student-2.msgpack", "m.teacher-2.msgpack"]
    final = unet.load(str(out)).params
    student = unet.load(str(tmp_path / "m.student-2.msgpack")).params
    teacher = unet.load(str(tmp_path / "m.teacher-2.msgpack")).params
    same = jax.tree_util.tree_map(np.array_equal, final, student)
    assert all(jax.tree_util.tree_leaves(same))
    assert not all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.array_equal, final, teacher)))


def test_train_ablations_from_geotiffs(tmp_path):
    """--no-mixup --no-self-training on a GeoTIFF + GeoJSON pair written by synth-scene."""
    from tessera.pipelines import buildings_train
    from tessera.pipelines import synth_scene

    info = synth_scene.write_scene(str(tmp_path / "scene"), seed=5, size=64)
    out = tmp_path / "ablation.msgpack"
    assert buildings_train.main(["--images", info["image"], "--labels", info["labels"],
                                 "--unlabelled", info["image"], "--no-mixup", "--no-self-training",
                                 "--output", str(out), *TINY]) == 0
    card = _card(out)
    assert card["config"]["mixup"] is False and card["config"]["self_training"] is False
    assert card["phases"]["student"] == "disabled (--no-self-training)"
    assert card["data"]["labelled_tiles"] == 1 and card["data"]["unlabelled_tiles"] == 0
    assert {r["phase"] for r in card["history"]} == {"teacher"}
    assert not (tmp_path / "ablation.teacher.msgpack").exists()


def test_geotiff_labels_rasterize_onto_the_scene(tmp_path):
    from tessera.pipelines import synth_scene
    from tessera.training.buildings import geotiff
    from tessera.training.buildings.scenes import render_scene

    info = synth_scene.write_scene(str(tmp_path / "s"), seed=9, size=96)
    tiles = geotiff.labelled_tiles(info["image"], info["labels"], w0=10, sigma_m=2.5)
    truth = render_scene(9, 96)
    assert np.array_equal(tiles[0].image, truth.image)
    agree = (tiles[0].mask > 0) == truth.mask
    assert agree.mean() > 0.99  # rasterio burns the same polygons (up to edge-pixel ties)


def test_fine_tuning_starts_from_a_checkpoint_and_keeps_its_architecture(tmp_path):
    """--init-from PATH: real GeoTIFF + labels, the checkpoint's (tiny) architecture wins over the
    default --base/--max-channels, and training moves the weights from where the checkpoint was."""
    from tessera.models import params_io, registry, unet
    from tessera.pipelines import buildings_train
    from tessera.pipelines import synth_scene

    start = registry.write_tiny("unet", str(tmp_path / "start"), seed=4)
    info = synth_scene.write_scene(str(tmp_path / "scene"), seed=6, size=64)
    out = tmp_path / "tuned.msgpack"
    assert buildings_train.main(["--init-from", start, "--images", info["image"], "--labels", info["labels"],
                                 "--no-self-training", "--steps", "2", "--batch-size", "2", "--crop", "32",
                                 "--chip", "64", "--processes", "1", "--output", str(out)]) == 0
    card = _card(out)
    assert card["data"]["init_from"] == start and card["model"]["base"] == unet.TINY_CONFIG["base"]
    before, after = params_io.load_params(start), params_io.load_params(str(out))
    leaves = lambda p: [np.asarray(x, np.float32) for x in __import__("jax").tree_util.tree_leaves(p)]
    diffs = [np.abs(a - b).max() for a, b in zip(leaves(before), leaves(after))]
    assert 0 < max(diffs) < 0.1  # moved a little from the checkpoint, not re-initialised
