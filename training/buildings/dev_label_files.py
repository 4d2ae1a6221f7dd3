"""Regenerate the dev-label GeoJSON files from the hand-typed pixel-coordinate JSON files.

Usage (from the repo root, after `make real-data`):
    python -m tessera.training.buildings.dev_label_files [tile_stem ...]
Reads dev_labels/<stem>.pixels.json and the tile data/real/dev/<stem>.tif; pixel
coordinates are (col, row) of pixel corners, mapped with the tile's affine transform, then
written in EPSG:4326 as <stem>.geojson (buildings) and <stem>.free.geojson (building-free regions).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import rasterio
from shapely.geometry import Polygon

HERE = Path(__file__).resolve().parent / "dev_labels"
TILES = Path("data") / "real" / "dev"


def convert(stem: str) -> tuple[int, int]:
    spec = json.loads((HERE / f"{stem}.pixels.json").read_text())
    with rasterio.open(TILES / f"{stem}.tif") as src:
        t, crs = src.transform, src.crs

    def geo(px):
        poly = Polygon([t * (c, r) for c, r in px])
        if not poly.is_valid:
            raise ValueError(f"{stem}: invalid polygon {px}")
        return poly

    b = spec["buildings"]
    bld = gpd.GeoDataFrame(
        {"building_id": [x["id"] for x in b], "tile": stem,
         "terrace": [bool(x.get("terrace", False)) for x in b],
         "truncated": [bool(x.get("truncated", False)) for x in b],
         "certain": [bool(x.get("certain", True)) for x in b]},
        geometry=[geo(x["px"]) for x in b], crs=crs).to_crs(4326)
    f = spec["free"]
    free = gpd.GeoDataFrame(
        {"region_id": [x["id"] for x in f], "tile": stem, "kind": [x["kind"] for x in f]},
        geometry=[geo(x["px"]) for x in f], crs=crs).to_crs(4326)
    bld.to_file(HERE / f"{stem}.geojson", driver="GeoJSON")
    free.to_file(HERE / f"{stem}.free.geojson", driver="GeoJSON")
    return len(bld), len(free)


def main(argv: list[str] | None = None) -> int:
    found = sorted(p.name[: -len(".pixels.json")] for p in HERE.glob("*.pixels.json"))
    for stem in (sys.argv[1:] if argv is None else argv) or found:
        print(stem, *convert(stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
