"""`tessera buildings-eval`: AP50 and precision / recall / F1 at IoU 0.5 (`--iou`) of predicted buildings.

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

import io
import json
import logging
import sys

import numpy as np

from tessera import fileio
from tessera.config import ConfigError
from tessera.pipelines import common
from tessera.transforms.buildings import metrics as buildings_metrics
from tessera.transforms.buildings.config import BuildingsEvalConfig

PROG = "tessera buildings-eval"

log = logging.getLogger(__name__)


def read_predictions(directory: str):
    """All predicted buildings under `directory` (local or gs://) as one GeoDataFrame (geometry,
    confidence; EPSG:4326); None when there is no `tessera buildings` output there at all."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    if directory.endswith((".parquet", ".csv.gz", ".csv")):
        paths = [directory] if fileio.exists(directory) else []
    else:
        patterns = [fileio.join(directory, *sub, ext) for sub in ((), ("**",)) for ext in ("*.parquet", "*.csv.gz")]
        paths = sorted({m.path for m in fileio.match_paths(patterns)})
    frames = []
    for path in paths:
        with fileio.open_read(path, uncompressed=True) as f:  # .gz as stored: pandas inflates it
            data = io.BytesIO(f.read())
        if path.endswith(".parquet"):
            frames.append(gpd.read_parquet(data)[["confidence", "geometry"]].to_crs(4326))
        else:
            df = pd.read_csv(data, compression="gzip" if path.endswith(".gz") else None)
            frames.append(gpd.GeoDataFrame({"confidence": df["confidence"]},
                                           geometry=shapely.from_wkt(df["geometry"]), crs=4326))
    if not frames:
        if not fileio.exists(fileio.join(directory, "COMPLETED")):
            return None  # not a predictions directory at all
        log.warning("no buildings under %s", directory)
        return gpd.GeoDataFrame({"confidence": []}, geometry=[], crs=4326)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=4326)


def read_labels(path: str):
    """Label polygons from any file geopandas reads (local or gs://)."""
    from tessera.training.buildings.geotiff import read_vectors

    return read_vectors(path)


def evaluate_frames(preds, labels, crs, min_confidence: float = 0.0,
                    iou: float = buildings_metrics.IOU_THRESHOLD) -> tuple[dict, dict]:
    """Metrics of prediction/label GeoDataFrames compared in `crs`; also the per-polygon outcome.

    The precision-recall curve over --min-confidence (and the thresholds reaching 80/85/90%
    precision) is computed on all predictions, whatever `min_confidence` is.
    """
    all_preds, labels = preds.to_crs(crs), labels.to_crs(crs)
    curve = buildings_metrics.precision_recall_curve(list(all_preds.geometry), list(all_preds["confidence"]),
                                                     list(labels.geometry), iou_threshold=iou)
    preds = all_preds[all_preds["confidence"] >= min_confidence]
    p, g = list(preds.geometry), list(labels.geometry)
    metrics = buildings_metrics.evaluate(p, list(preds["confidence"]), g, threshold=iou)
    matches = buildings_metrics.match_one_to_one(buildings_metrics.iou_pairs(p, g), iou)
    metrics["thresholds_for_precision"] = buildings_metrics.thresholds_for_precision(curve)
    metrics["pr_curve"] = curve
    outcome = {"preds": preds, "labels": labels, "tp_pred": {m[0] for m in matches},
               "tp_label": {m[1] for m in matches}}
    return metrics, outcome


def within_extent(labels, extent, crs):
    """Labels whose centroid lies inside (left, right, bottom, top) in `crs`."""
    import shapely

    left, right, bottom, top = extent
    local = labels.to_crs(crs)
    inside = local.centroid.within(shapely.box(left, bottom, right, top))
    return labels[inside.values]


def false_in_free_regions(preds, regions, crs) -> dict:
    """Predicted buildings that overlap hand-marked building-free regions, by region kind."""
    preds, regions = preds.to_crs(crs), regions.to_crs(crs)
    kinds = regions["kind"] if "kind" in regions else ["free"] * len(regions)
    out = {"free_regions": len(regions), "free_area_m2": float(regions.area.sum()), "by_kind": {}}
    hits = set()
    for geom, kind in zip(regions.geometry, kinds):
        inside = {i for i, p in enumerate(preds.geometry) if p.intersection(geom).area > 0.25 * p.area}
        out["by_kind"][kind] = out["by_kind"].get(kind, 0) + len(inside)
        hits |= inside
    out["false_buildings"] = len(hits)
    return out


def write_pr_png(path: str, curve: list[dict], thresholds: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    points = [p for p in curve if p["n_predictions"]]
    ax.plot([p["recall"] for p in points], [p["precision"] for p in points], marker=".", ms=3)
    for target, hit in thresholds.items():
        if hit:
            ax.annotate(f"P>={target}: conf {hit['min_confidence']:.2f}", (hit["recall"], hit["precision"]),
                        fontsize=7)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("buildings at IoU 0.5, over --min-confidence")
    fig.tight_layout()
    _save_png(fig, path)


def _read_image(path: str):
    """The image as the model saw it (same bands, warp and stretch), for drawing under the overlay."""
    from affine import Affine
    from rasterio.crs import CRS

    from tessera.transforms.buildings.raster import read_raster

    image, _, info = read_raster(path)
    t = Affine(*info.transform)
    left, top = t * (0, 0)
    right, bottom = t * (info.width, info.height)
    return image, (left, right, bottom, top), CRS.from_wkt(info.crs_wkt).to_string()


def write_png(path: str, outcome: dict, metrics: dict, image=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 10), dpi=110)
    if image is not None:
        img, extent, _ = image
        ax.imshow(img, extent=extent)

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
    ap = buildings_metrics.ap_key(metrics["iou_threshold"])
    ax.set_title(f"{ap.upper()} {fmt(ap)}  P {fmt('precision')}  R {fmt('recall')}  F1 {fmt('f1')}\ngreen: matched prediction, red: false positive, yellow: missed label")
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    _save_png(fig, path)


def _save_png(fig, path: str) -> None:
    """Render a matplotlib figure to PNG bytes and write them atomically (local or gs://)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    fileio.atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        args, _ = common.parse_config(PROG, __doc__, BuildingsEvalConfig, argv, beam=False)
    except ConfigError as err:
        return common.input_error(PROG, err)

    preds = read_predictions(args.predictions)
    if preds is None:
        return common.input_error(PROG, f"--predictions {args.predictions!r}: no GeoParquet or CSV files there")
    try:
        labels = read_labels(args.labels)
        free = read_labels(args.free_regions) if args.free_regions else None
        image = _read_image(args.image) if args.image else None
    except (FileNotFoundError, ValueError) as err:  # no match, no CRS, unusable raster
        return common.input_error(PROG, err)
    crs = image[2] if image is not None else labels.estimate_utm_crs()
    if image is not None:  # labels off the image cannot be found: compare within its extent only
        labels = within_extent(labels, image[1], crs)
    metrics, outcome = evaluate_frames(preds, labels, crs, args.min_confidence, args.iou)
    if free is not None:
        metrics["free_regions"] = false_in_free_regions(preds, free, crs)
    metrics = _json_safe(metrics)
    metrics["crs"] = str(crs)
    text = json.dumps(metrics, indent=1)
    print(json.dumps({k: v for k, v in metrics.items() if k != "pr_curve"}, indent=1))
    if args.output_json:
        from tessera.fileio import atomic_write_text
        atomic_write_text(args.output_json, text + "\n")
    if args.png:
        write_png(args.png, outcome, metrics, image)
    if args.pr_png:
        write_pr_png(args.pr_png, metrics["pr_curve"], metrics["thresholds_for_precision"])
    return 0


def _json_safe(value):
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
