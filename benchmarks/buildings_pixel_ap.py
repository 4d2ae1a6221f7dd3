"""Pixel average precision of buildings models on the dev tiles or a dev split's halves.

    python benchmarks/buildings_pixel_ap.py --model A.msgpack --model B.msgpack            # dev tiles
    python benchmarks/buildings_pixel_ap.py --model A.msgpack --split out/dev_split        # west / east

Instance F1 at IoU 0.5 (`buildings_real.py`) asks for whole buildings; this asks only whether the
probability map ranks building pixels above the rest (labels burnt in as training sees them,
nodata left out). A model can gain here and not there: it then finds building pixels but not
building shapes. Needs `make real-data`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.buildings_real import dev_tiles  # noqa: E402
from tessera.models import unet  # noqa: E402
from tessera.training.buildings import geotiff  # noqa: E402
from tessera.transforms.buildings.metrics import pixel_average_precision  # noqa: E402


def probability_map(model, image: np.ndarray) -> np.ndarray:
    """The model's probabilities for one uint8 tile (reflect-padded to a multiple of 16)."""
    x = image.astype(np.float32) / 255.0
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, -1)
    h, w = x.shape[:2]
    x = np.pad(x, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="reflect")[None]
    return np.asarray(model.apply_fn(model.params, x))[0, :h, :w]


def tiles_of(split: str, part: str) -> list[tuple[str, str]]:
    """(image, labels) of the dev tiles, or of one half of a dev split (halves without labels skipped)."""
    if not split:
        return [(image, labels) for _, image, labels, _ in dev_tiles()]
    folder = os.path.join(split, part)
    if not os.path.isdir(os.path.join(folder, "images")):
        raise ValueError(f"--split {split!r}: no {part}/images there "
                         "(write one with `python -m tessera.training.buildings.dev_split --output DIR`)")
    out = []
    for name in sorted(os.listdir(os.path.join(folder, "images"))):
        labels = os.path.join(folder, "labels", name[:-len(".tif")] + ".geojson")
        if name.endswith(".tif") and os.path.exists(labels):
            out.append((os.path.join(folder, "images", name), labels))
    return out


def score(model_path: str, tiles: list[tuple[str, str]]) -> float:
    if not tiles:
        raise ValueError("no labelled tiles: run `make real-data` (and check the --split folder)")
    model = unet.load(model_path)
    probs, truth = [], []
    for image, labels in tiles:
        tile = geotiff.labelled_tiles(image, labels, w0=0.0, sigma_m=1.0)[0]
        valid = tile.weights > 0
        probs.append(probability_map(model, tile.image)[valid])
        truth.append(tile.mask[valid] > 0)
    return pixel_average_precision(np.concatenate(probs), np.concatenate(truth))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="a .msgpack (repeat to compare)")
    parser.add_argument("--split", default="", help="a dev split (`python -m tessera.training.buildings.dev_split`)")
    args = parser.parse_args(argv)
    parts = ("west", "east") if args.split else ("dev",)
    report = {}
    for model in args.model:
        try:
            report[model] = {part: round(score(model, tiles_of(args.split, part)), 3) for part in parts}
        except (ValueError, FileNotFoundError) as err:  # a missing split, model or label file
            print(f"buildings_pixel_ap: {err}", file=sys.stderr)
            return 2
        print(json.dumps({model: report[model]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
