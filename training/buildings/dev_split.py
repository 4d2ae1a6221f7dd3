"""Cut every labelled dev tile into a west and an east half, so a model can be fine-tuned on real
labels (west) and still be selected on real buildings it never saw (east).

    python -m tessera.training.buildings.dev_split --output out/dev_split   # after `make real-data`

Writes `OUTPUT/{west,east}/images/<tile>.tif` (the tile's pixels left / right of its middle column,
same CRS and pixel grid), `labels/<tile>.geojson` (the buildings whose centroid lies in that half,
whole) and `free/<tile>.free.geojson` (the building-free regions clipped to the half). A half with
no building gets no label file. The split is fixed (the middle column), so every fine-tuning run
and every score on the east halves refers to the same pixels.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HALVES = ("west", "east")


def split_tile(image: str, labels: str, free: str | None, output: str) -> dict[str, int]:
    """Write both halves of one tile; returns the number of buildings per half."""
    import warnings

    import geopandas as gpd
    import rasterio
    import shapely
    from rasterio.windows import Window, bounds

    stem = Path(labels).name[: -len(".geojson")]
    counts = {}
    with rasterio.open(image) as src:
        middle = src.width // 2
        windows = {"west": Window(0, 0, middle, src.height),
                   "east": Window(middle, 0, src.width - middle, src.height)}
        buildings = gpd.read_file(labels).to_crs(src.crs)
        regions = gpd.read_file(free).to_crs(src.crs) if free else None
        for half, window in windows.items():
            folder = Path(output) / half
            for sub in ("images", "labels", "free"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            profile = src.profile | {"width": window.width, "height": window.height,
                                     "transform": src.window_transform(window)}
            with rasterio.open(folder / "images" / f"{stem}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
            box = shapely.box(*bounds(window, src.transform))
            with warnings.catch_warnings():  # a centroid in degrees is still inside the half or not
                warnings.simplefilter("ignore", UserWarning)
                inside = buildings[buildings.geometry.centroid.within(box)]
            counts[half] = len(inside)
            if len(inside):
                inside.to_crs(4326).to_file(folder / "labels" / f"{stem}.geojson", driver="GeoJSON")
            if regions is not None:
                clipped = regions.assign(geometry=regions.geometry.intersection(box))
                clipped = clipped[~clipped.geometry.is_empty]
                if len(clipped):
                    clipped.to_crs(4326).to_file(folder / "free" / f"{stem}.free.geojson", driver="GeoJSON")
    return counts


def main(argv: list[str] | None = None) -> int:
    from tessera.training.buildings.dev_label_files import HERE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    parser.add_argument("--tiles", default=os.path.join("data", "real", "dev"),
                        help="folder of the dev GeoTIFFs (`make real-data`)")
    args = parser.parse_args(argv)
    done = 0
    for labels in sorted(HERE.glob("*.geojson")):
        if labels.name.endswith(".free.geojson"):
            continue
        stem = labels.name[: -len(".geojson")]
        image = Path(args.tiles) / f"{stem}.tif"
        if not image.exists():
            print(f"error: {image} is missing: run `make real-data` first", file=sys.stderr)
            return 2
        free = labels.with_name(f"{stem}.free.geojson")
        counts = split_tile(str(image), str(labels), str(free) if free.exists() else None, args.output)
        print(stem, " ".join(f"{h} {counts[h]}" for h in HALVES))
        done += 1
    return 0 if done else 2


if __name__ == "__main__":
    sys.exit(main())
