"""`tessera buildings-eval`: AP50 and precision / recall / F1 at IoU 0.5 of predicted buildings.

Reads the predictions `tessera buildings` wrote (GeoParquet files anywhere under DIR, or the
`--format csv` variant, *.csv.gz with WKT geometry) and a label file geopandas can read, projects
both to one metric CRS (the image's if --image is given, else the labels' UTM zone), prints the
metrics as JSON (`transforms.building_metrics`), and writes a PNG overlay: true positives green,
false positives red, missed labels (false negatives) yellow, on the image when given.

Local:
  tessera buildings-eval --predictions out/buildings --labels scene/buildings.geojson \\
      --image scene/scene.tif --output-json out/eval.json --png out/eval.png
Not a Beam job: evaluation sets are the size of a labelled test area and fit in memory. Paths may
be gs:// (geopandas/fsspec read them).
"""
from __future__ import annotations

import glob
import json
import logging
import os
import sys

import numpy as np

from tessera.config import ConfigError, add_flags, from_args
from tessera.pipelines import common
from tessera.transforms.buildings import metrics as buildings_metrics
from tessera.transforms.buildings.config import BuildingsEvalConfig

PROG = "tessera buildings-eval"

log = logging.getLogger(__name__)


def read_predictions(directory: str):
    """All predicted buildings under `directory` as one GeoDataFrame (geometry, confidence; EPSG:4326)."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    if directory.endswith((".parquet", ".csv.gz", ".csv")):
        paths = [directory]
    else:
        paths = sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True))
        paths += sorted(glob.glob(os.path.join(directory, "**", "*.csv.gz"), recursive=True))
    frames = []
    for path in paths:
        if path.endswith(".parquet"):
            frames.append(gpd.read_parquet(path)[["confidence", "geometry"]].to_crs(4326))
        else:
            df = pd.read_csv(path)
            frames.append(gpd.GeoDataFrame({"confidence": df["confidence"]},
                                           geometry=shapely.from_wkt(df["geometry"]), crs=4326))
    if not frames:
        log.warning("no prediction files under %s", directory)
        return gpd.GeoDataFrame({"confidence": []}, geometry=[], crs=4326)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326)


def read_labels(path: str):
    import geopandas as gpd

    gdf = gpd.read_parquet(path) if path.endswith(".parquet") else gpd.read_file(path)
    if gdf.crs is None:
        raise ValueError(f"{path}: labels have no CRS")
    return gdf[~gdf.geometry.is_empty & gdf.geometry.notna()]


def evaluate_frames(preds, labels, crs, min_confidence: float = 0.0) -> tuple[dict, dict]:
    """Metrics of prediction/label GeoDataFrames compared in `crs`; also the per-polygon outcome."""
    preds = preds[preds["confidence"] >= min_confidence].to_crs(crs)
    labels = labels.to_crs(crs)
    p, g = list(preds.geometry), list(labels.geometry)
    metrics = buildings_metrics.evaluate(p, list(preds["confidence"]), g)
    matches = buildings_metrics.match_one_to_one(buildings_metrics.iou_pairs(p, g))
    outcome = {"preds": preds, "labels": labels, "tp_pred": {m[0] for m in matches},
               "tp_label": {m[1] for m in matches}}
    return metrics, outcome


def _read_image(path: str):
    import rasterio

    from tessera.training.buildings.data import normalize_bands

    with rasterio.open(path) as src:
        step = max(1, max(src.height, src.width) // 2048)  # plot at most ~2k pixels per side
        data = src.read(out_shape=(src.count, src.height // step, src.width // step))
        return normalize_bands(data, src.nodata), src.bounds, src.crs


def write_png(path: str, outcome: dict, metrics: dict, image=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 10), dpi=110)
    if image is not None:
        img, bounds, _ = image
        ax.imshow(img, extent=(bounds.left, bounds.right, bounds.bottom, bounds.top))

    def draw(geoms, keep, color, lw):
        for i, geom in enumerate(geoms):
            if not keep(i):
                continue
            for part in getattr(geom, "geoms", [geom]):
                if part.geom_type == "Polygon":
                    x, y = part.exterior.xy
                    ax.plot(x, y, color=color, lw=lw)

    draw(outcome["labels"].geometry, lambda i: i not in outcome["tp_label"], "yellow", 1.6)
    draw(outcome["preds"].geometry, lambda i: i in outcome["tp_pred"], "lime", 1.0)
    draw(outcome["preds"].geometry, lambda i: i not in outcome["tp_pred"], "red", 1.2)
    fmt = lambda k: "n/a" if metrics.get(k) is None else f"{metrics[k]:.3f}"
    ax.set_title(f"AP50 {fmt('ap50')}  P {fmt('precision')}  R {fmt('recall')}  F1 {fmt('f1')}\ngreen: matched prediction, red: false positive, yellow: missed label")
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    from tessera.fileio import atomic_write_bytes
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = common.make_parser(PROG, __doc__)
    add_flags(parser, BuildingsEvalConfig)
    try:
        args = from_args(BuildingsEvalConfig, parser.parse_args(sys.argv[1:] if argv is None else argv))
    except ConfigError as err:
        return common.input_error(PROG, err)

    preds, labels = read_predictions(args.predictions), read_labels(args.labels)
    image = _read_image(args.image) if args.image else None
    crs = image[2] if image is not None else labels.estimate_utm_crs()
    metrics, outcome = evaluate_frames(preds, labels, crs, args.min_confidence)
    metrics = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}
    metrics["crs"] = str(crs)
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.output_json:
        from tessera.fileio import atomic_write_text
        atomic_write_text(args.output_json, text + "\n")
    if args.png:
        write_png(args.png, outcome, metrics, image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
