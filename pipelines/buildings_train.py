"""`tessera buildings-train`: train or fine-tune the building-segmentation U-Net (Open Buildings recipe).

Trains from GeoTIFFs plus vector labels (read exactly as `tessera buildings` reads them: same bands,
warp and stretch), from scenes rendered on real building layouts (`--world-seeds`, world.py) and/or
the first generator (`--synthetic-seeds`), with separation-weighted loss, mixup, appearance
matching to real tiles and self-training on unlabelled tiles. Writes flax msgpack and a JSON card.

Fine-tune the shipped model on your labels (README recipe):
  tessera buildings-train --init-from shipped --images 'mine/*.tif' --labels 'mine/buildings.geojson' \
      --no-self-training --steps 300 --batch-size 8 --lr 5e-4 --output out/my_unet.msgpack
The shipped model: models/weights/unet_buildings.md and .json (exact command, data and time).

Training is not a Beam job: one process on one accelerator (or CPU); on a GPU VM,
`pip install -e .[gpu]` then the same command. Inference at scale is `tessera buildings` on Dataflow.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

from tessera import fileio
from tessera.config import ConfigError, to_dict
from tessera.pipelines import common
from tessera.training.buildings import data as bt
from tessera.training.buildings import geotiff
from tessera.training.buildings.config import BuildingsTrainConfig

PROG = "tessera buildings-train"

log = logging.getLogger(__name__)


def _seed_range(text: str) -> list[int]:
    """'A:B' -> A..B-1; 'A,B,C' -> those seeds."""
    if not text:
        return []
    if ":" in text:
        a, b = text.split(":")
        return list(range(int(a), int(b)))
    return [int(s) for s in text.split(",")]


def _call(args):
    fn, rest = args
    return fn(*rest)


def _map(fn, items, processes, every: int = 50):
    """fn(*item) for each item, in worker processes, logging the rate and ETA as scenes render."""
    if not items:
        return []
    out, start = [], time.time()

    def progress():
        done = len(out)
        if done % every == 0 or done == len(items):
            rate = done / max(time.time() - start, 1e-9)
            log.info("rendered %d/%d %s (%.1f/s, ETA %.0f s)", done, len(items), fn.__name__, rate,
                     (len(items) - done) / max(rate, 1e-9))

    if processes == 1 or len(items) <= 1:
        for a in items:
            out.append(fn(*a))
            progress()
        return out
    # spawn: safe even if the parent already initialised an accelerator runtime
    with multiprocessing.get_context("spawn").Pool(processes or os.cpu_count()) as pool:
        for result in pool.imap(_call, [(fn, a) for a in items], chunksize=4):
            out.append(result)
            progress()
    return out


def _render(config: BuildingsTrainConfig, sigma: float):
    """Rendered tiles: (labelled, unlabelled, val), synthetic and real-layout scenes, the rendered
    labelled ones partly matched to real image statistics (--appearance-from)."""
    from tessera.training.buildings import appearance
    from tessera.training.buildings import world

    size, w0 = config.synthetic_size, config.w0
    st = config.self_training
    groups = [  # (function, seeds, labelled, role)
        (bt.synthetic_tile, _seed_range(config.synthetic_seeds), True, "train"),
        (world.world_tile, _seed_range(config.world_seeds), True, "train"),
        (bt.synthetic_tile, _seed_range(config.val_seeds), True, "val"),
        (bt.synthetic_tile, _seed_range(config.synthetic_unlabelled_seeds) if st else [], False, "unlabelled"),
        (world.world_tile, _seed_range(config.world_unlabelled_seeds) if st else [], False, "unlabelled"),
    ]
    out = {"train": [], "val": [], "unlabelled": []}
    for fn, seeds, is_labelled, role in groups:
        extra = (config.layouts,) if fn is world.world_tile else ()
        out[role] += _map(fn, [(s, size, w0, sigma, is_labelled, *extra) for s in seeds], config.processes)
    if config.appearance_from:
        refs = geotiff.unlabelled_tiles(config.appearance_from, config.band_numbers, config.gsd_m)
        out["train"] = appearance.randomize_appearance(out["train"], refs, config.appearance_p, config.seed)
    return out["train"], out["unlabelled"], out["val"]


def _init_params(init_from: str):
    if not init_from:
        return None
    from tessera.models import params_io
    from tessera.models.base import SHIPPED_UNET
    return params_io.load_params(SHIPPED_UNET if init_from == "shipped" else init_from)


def _save(path: str, params, dtype: str) -> None:
    import jax

    from tessera.models import params_io

    params = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), params)
    params_io.save_params(path, params)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        config, _ = common.parse_config(PROG, __doc__, BuildingsTrainConfig, argv, beam=False)
    except ConfigError as err:
        return common.input_error(PROG, err)
    sigma = config.sigma_px
    t0 = time.time()
    try:
        labelled, unlabelled, val = _render(config, sigma)
        if config.images:
            labelled += geotiff.labelled_tiles(config.images, config.labels, w0=config.w0,
                                               sigma_m=config.sigma_m, bands=config.band_numbers,
                                               gsd_m=config.gsd_m) * config.repeat_images
        if config.unlabelled and config.self_training:
            unlabelled += geotiff.unlabelled_tiles(config.unlabelled, config.band_numbers, config.gsd_m)
    except (FileNotFoundError, ValueError) as err:  # no match, no layouts, unusable raster or labels
        return common.input_error(PROG, err)
    data_seconds = time.time() - t0
    log.info("data: %d labelled, %d unlabelled, %d val tiles in %.1fs", len(labelled), len(unlabelled),
             len(val), data_seconds)

    from tessera.models import unet
    from tessera.training.buildings import trainer as buildings_trainer

    model_cfg = dict(unet.TINY_CONFIG) if config.tiny else {"base": config.base, "max_channels": config.max_channels,
                                                          "depth": 4}
    cfg = buildings_trainer.TrainConfig(
        steps=config.steps, student_steps=config.student_steps, batch_size=config.batch_size,
        crop=config.crop, chip=config.chip, lr=config.lr, mixup=config.mixup,
        mixup_alpha=config.mixup_alpha, self_training=config.self_training,
        kl_weight=config.kl_weight, seed=config.seed, log_every=config.log_every,
        max_seconds=config.max_seconds, checkpoint_every=config.checkpoint_every, **model_cfg)

    def checkpoint(phase, params):  # the teacher is kept too: a cut-off run still leaves a model
        if phase == "teacher" and cfg.self_training and unlabelled:
            _save(config.output.replace(".msgpack", "") + ".teacher.msgpack", params, config.save_dtype)

    init = _init_params(config.init_from)
    if init is not None:
        model_cfg = unet.config_from_params(init)
    def snapshot(phase, step, params):
        _save(f"{config.output.replace('.msgpack', '')}.{phase}-{step}.msgpack", params, config.save_dtype)

    params, summary = buildings_trainer.train(cfg, labelled, unlabelled, on_phase_end=checkpoint,
                                              init_params=init, on_checkpoint=snapshot)
    _save(config.output, params, config.save_dtype)
    card = {
        "command": "tessera buildings-train " + " ".join(argv),
        "config": {**to_dict(config), "sigma_px": sigma},
        "model": {**model_cfg, "params": summary["params"], "save_dtype": config.save_dtype},
        "data": {"labelled_tiles": len(labelled), "unlabelled_tiles": len(unlabelled),
                 "synthetic_seeds": config.synthetic_seeds,
                 "synthetic_unlabelled_seeds": config.synthetic_unlabelled_seeds,
                 "world_seeds": config.world_seeds, "world_unlabelled_seeds": config.world_unlabelled_seeds,
                 "layouts": config.layouts, "appearance_from": config.appearance_from,
                 "images": config.images, "labels": config.labels, "unlabelled": config.unlabelled,
                 "init_from": config.init_from},
        "device": summary["device"], "phases": summary["phases"], "history": summary["history"],
        "seconds": {"data": round(data_seconds, 1), "total": round(time.time() - t0, 1)},
    }
    if val:
        card["val_pixel_scores"] = buildings_trainer.pixel_scores(params, model_cfg, val)
        log.info("val pixel scores: %s", card["val_pixel_scores"])
    card_path = os.path.splitext(config.output)[0] + ".json"
    fileio.atomic_write_text(card_path, json.dumps(card, indent=1, default=str))
    log.info("wrote %s and %s", config.output, card_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
