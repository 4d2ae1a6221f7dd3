"""`tessera buildings-train`: train the building-segmentation U-Net (Open Buildings recipe).

Trains from GeoTIFFs plus vector labels (any file geopandas reads; rasterized with rasterio in each
image's grid), or from synthetic scenes rendered in memory (the same scenes `tessera synth-scene`
writes), with separation-weighted loss, mixup and self-training on unlabelled tiles. Writes the
params as flax msgpack and a JSON card (config, data, history, scores) beside them.

Local (from GeoTIFFs):
  tessera buildings-train --images 'data/train/*/scene.tif' --labels 'data/train/*/buildings.geojson' \\
      --unlabelled 'data/unlabelled/*.tif' --output out/unet.msgpack
Ablations: add --no-mixup and/or --no-self-training.
The shipped model (models/weights/unet_buildings.md has the exact command and where it ran):
  python -m tessera.pipelines.buildings_train --synthetic-seeds 0:320 --synthetic-unlabelled-seeds 100000:100160 \\
      --val-seeds 90000:90008 --batch-size 32 --steps 3000 --student-steps 2000 --processes 16 \\
      --save-dtype float16 --output models/weights/unet_buildings.msgpack

Training is not a Beam job: it is one process on one accelerator (or CPU); run it on a GPU VM, e.g.
`pip install -e .[gpu]` then the same command. Inference at scale is `tessera buildings` on Dataflow.
"""
from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

from tessera import fileio
from tessera.config import ConfigError, add_flags, from_args, to_dict
from tessera.pipelines import common
from tessera.training.buildings import data as bt
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


def _map(fn, items, processes):
    if processes == 1 or len(items) <= 1:
        return [fn(*a) for a in items]
    # spawn: safe even if the parent already initialised an accelerator runtime
    with multiprocessing.get_context("spawn").Pool(processes or os.cpu_count()) as pool:
        return pool.starmap(fn, items)


def read_geotiff_tiles(images_glob: str, labels: str, *, w0: float, sigma: float) -> list[bt.Tile]:
    """Labelled tiles from GeoTIFFs + vector labels reprojected and rasterized into each image grid."""
    import geopandas as gpd
    import pandas as pd
    import rasterio

    paths = sorted(glob.glob(images_glob))
    if not paths:
        raise FileNotFoundError(f"no images match {images_glob!r}")
    frames = []
    for path in sorted(glob.glob(labels)) if labels else []:
        frames.append(gpd.read_file(path) if not path.endswith(".parquet") else gpd.read_parquet(path))
    if not frames:
        raise FileNotFoundError(f"no label files match {labels!r}")
    label_df = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    tiles = []
    for path in paths:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ValueError(f"{path}: no CRS; cannot place labels")
            image = bt.normalize_bands(src.read(), src.nodata)
            local = label_df.to_crs(src.crs).cx[src.bounds.left:src.bounds.right, src.bounds.bottom:src.bounds.top]
            instances = bt.rasterize_instances(list(local.geometry), src.transform, (src.height, src.width))
        tiles.append(bt.make_tile(image, instances, w0=w0, sigma=sigma, key=path))
    return tiles


def read_unlabelled_tiles(images_glob: str) -> list[bt.Tile]:
    import rasterio

    tiles = []
    for path in sorted(glob.glob(images_glob)):
        with rasterio.open(path) as src:
            tiles.append(bt.Tile(image=bt.normalize_bands(src.read(), src.nodata), key=path))
    return tiles


def _save(path: str, params, dtype: str) -> None:
    import jax

    from tessera.models import params_io

    params = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), params)
    params_io.save_params(path, params)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    parser = common.make_parser(PROG, __doc__)
    add_flags(parser, BuildingsTrainConfig)
    try:
        config = from_args(BuildingsTrainConfig, parser.parse_args(argv))
    except ConfigError as err:
        return common.input_error(PROG, err)
    sigma = config.sigma_px
    t0 = time.time()
    labelled: list[bt.Tile] = []
    unlabelled: list[bt.Tile] = []
    seeds = _seed_range(config.synthetic_seeds)
    useeds = _seed_range(config.synthetic_unlabelled_seeds) if config.self_training else []
    vseeds = _seed_range(config.val_seeds)
    jobs = ([(s, config.synthetic_size, config.w0, sigma, True) for s in seeds + vseeds]
            + [(s, config.synthetic_size, config.w0, sigma, False) for s in useeds])
    rendered = _map(bt.synthetic_tile, jobs, config.processes)
    labelled += rendered[:len(seeds)]
    val = rendered[len(seeds):len(seeds) + len(vseeds)]
    unlabelled += rendered[len(seeds) + len(vseeds):]
    if config.images:
        labelled += read_geotiff_tiles(config.images, config.labels, w0=config.w0, sigma=sigma)
    if config.unlabelled and config.self_training:
        unlabelled += read_unlabelled_tiles(config.unlabelled)
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
        max_seconds=config.max_seconds, **model_cfg)

    def checkpoint(phase, params):  # the teacher is kept too: a cut-off run still leaves a model
        if phase == "teacher" and cfg.self_training and unlabelled:
            _save(config.output.replace(".msgpack", "") + ".teacher.msgpack", params, config.save_dtype)

    params, summary = buildings_trainer.train(cfg, labelled, unlabelled, on_phase_end=checkpoint)
    _save(config.output, params, config.save_dtype)
    card = {
        "command": "tessera buildings-train " + " ".join(argv),
        "config": {**to_dict(config), "sigma_px": sigma},
        "model": {**model_cfg, "params": summary["params"], "save_dtype": config.save_dtype},
        "data": {"labelled_tiles": len(labelled), "unlabelled_tiles": len(unlabelled),
                 "synthetic_seeds": config.synthetic_seeds, "synthetic_unlabelled_seeds": config.synthetic_unlabelled_seeds,
                 "images": config.images, "labels": config.labels, "unlabelled": config.unlabelled},
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
