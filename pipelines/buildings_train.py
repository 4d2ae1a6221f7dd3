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

import argparse
import glob
import json
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

from tessera import fileio
from tessera.training.buildings import data as bt

log = logging.getLogger(__name__)


def _seed_range(text: str) -> list[int]:
    """'A:B' -> A..B-1; 'A,B,C' -> those seeds."""
    if not text:
        return []
    if ":" in text:
        a, b = text.split(":")
        return list(range(int(a), int(b)))
    return [int(s) for s in text.split(",")]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="tessera buildings-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--images", default="", help="glob of labelled GeoTIFFs")
    data.add_argument("--labels", default="", help="vector label file or glob (GeoJSON, GeoParquet, ...)")
    data.add_argument("--unlabelled", default="", help="glob of unlabelled GeoTIFFs for self-training")
    data.add_argument("--synthetic-seeds", default="", help="render labelled scenes for seeds 'A:B' or 'a,b'")
    data.add_argument("--synthetic-unlabelled-seeds", default="", help="render unlabelled scenes for seeds")
    data.add_argument("--synthetic-size", type=int, default=512, help="pixels per side of rendered scenes")
    data.add_argument("--val-seeds", default="", help="synthetic seeds for the pixel scores in the card")
    data.add_argument("--processes", type=int, default=0, help="worker processes for rendering (0: cpu count)")
    train = p.add_argument_group("training")
    train.add_argument("--output", required=True, help="output .msgpack (a .json card is written beside it)")
    train.add_argument("--steps", type=int, default=3000, help="supervised (teacher) steps")
    train.add_argument("--student-steps", type=int, default=2000, help="self-training (student) steps")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--crop", type=int, default=256, help="training crop size (multiple of 16)")
    train.add_argument("--chip", type=int, default=512, help="tiles are held on the device as chips of this size")
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--mixup", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--mixup-alpha", type=float, default=0.4)
    train.add_argument("--self-training", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--kl-weight", type=float, default=1.0)
    train.add_argument("--w0", type=float, default=10.0, help="separation weight amplitude")
    train.add_argument("--sigma-m", type=float, default=2.5, help="separation weight width, metres")
    train.add_argument("--gsd-m", type=float, default=0.5, help="metres per pixel of the training data")
    train.add_argument("--base", type=int, default=16)
    train.add_argument("--max-channels", type=int, default=128)
    train.add_argument("--tiny", action="store_true", help="the tiny test model (base 4, max 16)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--max-seconds", type=float, default=None, help="cap per phase (stops early)")
    train.add_argument("--save-dtype", choices=["float32", "float16"], default="float32")
    train.add_argument("--log-every", type=int, default=100)
    return p.parse_args(argv)


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
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sigma = args.sigma_m / args.gsd_m
    t0 = time.time()
    labelled: list[bt.Tile] = []
    unlabelled: list[bt.Tile] = []
    seeds = _seed_range(args.synthetic_seeds)
    useeds = _seed_range(args.synthetic_unlabelled_seeds) if args.self_training else []
    vseeds = _seed_range(args.val_seeds)
    jobs = ([(s, args.synthetic_size, args.w0, sigma, True) for s in seeds + vseeds]
            + [(s, args.synthetic_size, args.w0, sigma, False) for s in useeds])
    rendered = _map(bt.synthetic_tile, jobs, args.processes)
    labelled += rendered[:len(seeds)]
    val = rendered[len(seeds):len(seeds) + len(vseeds)]
    unlabelled += rendered[len(seeds) + len(vseeds):]
    if args.images:
        labelled += read_geotiff_tiles(args.images, args.labels, w0=args.w0, sigma=sigma)
    if args.unlabelled and args.self_training:
        unlabelled += read_unlabelled_tiles(args.unlabelled)
    data_seconds = time.time() - t0
    log.info("data: %d labelled, %d unlabelled, %d val tiles in %.1fs", len(labelled), len(unlabelled),
             len(val), data_seconds)

    from tessera.models import unet
    from tessera.training.buildings import trainer as buildings_trainer

    model_cfg = dict(unet.TINY_CONFIG) if args.tiny else {"base": args.base, "max_channels": args.max_channels,
                                                          "depth": 4}
    cfg = buildings_trainer.TrainConfig(
        steps=args.steps, student_steps=args.student_steps, batch_size=args.batch_size, crop=args.crop, chip=args.chip,
        lr=args.lr, mixup=args.mixup, mixup_alpha=args.mixup_alpha, self_training=args.self_training,
        kl_weight=args.kl_weight, seed=args.seed, log_every=args.log_every, max_seconds=args.max_seconds,
        **model_cfg)

    def checkpoint(phase, params):  # the teacher is kept too: a cut-off run still leaves a model
        if phase == "teacher" and cfg.self_training and unlabelled:
            _save(args.output.replace(".msgpack", "") + ".teacher.msgpack", params, args.save_dtype)

    params, summary = buildings_trainer.train(cfg, labelled, unlabelled, on_phase_end=checkpoint)
    _save(args.output, params, args.save_dtype)
    card = {
        "command": "tessera buildings-train " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": {**vars(args), "sigma_px": sigma},
        "model": {**model_cfg, "params": summary["params"], "save_dtype": args.save_dtype},
        "data": {"labelled_tiles": len(labelled), "unlabelled_tiles": len(unlabelled),
                 "synthetic_seeds": args.synthetic_seeds, "synthetic_unlabelled_seeds": args.synthetic_unlabelled_seeds,
                 "images": args.images, "labels": args.labels, "unlabelled": args.unlabelled},
        "device": summary["device"], "phases": summary["phases"], "history": summary["history"],
        "seconds": {"data": round(data_seconds, 1), "total": round(time.time() - t0, 1)},
    }
    if val:
        card["val_pixel_scores"] = buildings_trainer.pixel_scores(params, model_cfg, val)
        log.info("val pixel scores: %s", card["val_pixel_scores"])
    card_path = os.path.splitext(args.output)[0] + ".json"
    fileio.atomic_write_text(card_path, json.dumps(card, indent=1, default=str))
    log.info("wrote %s and %s", args.output, card_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
