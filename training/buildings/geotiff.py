"""Training tiles from real GeoTIFFs and vector labels, read exactly as `tessera buildings` reads them.

Each image goes through `transforms.buildings.raster.read_raster`: the same band choice, warp to
local UTM at the model's pixel size and per-file percentile stretch as inference, so a 16-bit pan
tile looks the same to the model in training and in production. Labels (any file geopandas reads:
GeoJSON, GeoPackage, GeoParquet, ...) are reprojected into each image's grid and rasterized there.
Paths may be local or gs:// (through `tessera.fileio`).
"""
from __future__ import annotations

import dataclasses
import io
import logging

from tessera import fileio
from tessera.training.buildings import data as bt
from tessera.transforms.buildings.normalize import to_uint8
from tessera.transforms.buildings.raster import MODEL_GSD_M, read_raster

log = logging.getLogger(__name__)


def match(pattern: str) -> list[str]:
    """Sorted paths matching a glob, local or gs://; a comma-separated list of globs is allowed."""
    paths = sorted({m.path for p in pattern.split(",") if p.strip() for m in fileio.match_paths(p.strip())})
    if not paths:
        raise FileNotFoundError(f"no files match {pattern!r}")
    return paths


def read_vectors(pattern: str):
    """All polygons of the matching vector files as one GeoDataFrame (in the first file's CRS)."""
    import geopandas as gpd
    import pandas as pd

    frames = []
    for path in match(pattern):
        data = io.BytesIO(fileio.read_bytes(path))
        frame = gpd.read_parquet(data) if path.endswith(".parquet") else gpd.read_file(data)
        if frame.crs is None:
            raise ValueError(f"{path}: labels have no CRS")
        frames.append(frame[frame.geometry.notna() & ~frame.geometry.is_empty])
    crs = frames[0].crs
    return gpd.GeoDataFrame(pd.concat([f.to_crs(crs) for f in frames], ignore_index=True), crs=crs)


def labelled_tiles(images: str, labels: str, *, w0: float, sigma_m: float,
                   bands: tuple[int, ...] | None = None, gsd_m: float = MODEL_GSD_M) -> list[bt.Tile]:
    """One labelled tile per image: the model's view of the image plus the labels burnt into it.

    Args:
      images, labels: globs (labels: every polygon is a building; pixels outside the image's
        valid area are not trained on).
      sigma_m: width of the separation weights in metres (converted with the grid's pixel size).
    """
    label_df = read_vectors(labels)
    tiles = []
    for path in match(images):
        image, valid, info = read_raster(path, bands, gsd_m)
        left, top, res = info.transform[2], info.transform[5], info.transform[0]
        right, bottom = left + info.width * res, top - info.height * res
        local = label_df.to_crs(info.crs_wkt).cx[left:right, bottom:top]
        instances = bt.rasterize_instances(list(local.geometry), info.transform, (info.height, info.width))
        tile = bt.make_tile(to_uint8(image), instances, w0=w0, sigma=sigma_m / res, key=path)
        tile = dataclasses.replace(tile, weights=tile.weights * valid)  # no loss off the image
        log.info("%s: %d buildings, %dx%d px at %.2f m", path, len(local), info.width, info.height, res)
        tiles.append(tile)
    return tiles


def unlabelled_tiles(images: str, bands: tuple[int, ...] | None = None,
                     gsd_m: float = MODEL_GSD_M) -> list[bt.Tile]:
    """The model's view of each image (for self-training and appearance statistics)."""
    return [bt.Tile(image=to_uint8(read_raster(path, bands, gsd_m)[0]), key=path) for path in match(images)]
