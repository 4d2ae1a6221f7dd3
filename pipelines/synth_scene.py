"""`tessera synth-scene`: write a synthetic georeferenced scene and its true building footprints.

Writes DIR/scene.tif (3-band uint8 GeoTIFF, 0.5 m/pixel, local UTM CRS, origin snapped to the
0.5 m grid) and DIR/buildings.geojson (true footprints, EPSG:4326, with `building_id` and
`area_in_meters`). The scene is rendered by `transforms.synth_scene.render_scene(seed, size)`, so the
same seed gives the same scene everywhere (the training set of the shipped model is seeds 0..319).

Local:
  tessera synth-scene --output out/scene --seed 7 --size 1024 --center 5.6037,-0.1870
This is not a Beam job (one small file pair); `gs://` output directories work as well.
"""
from __future__ import annotations

import json
import logging
import math
import sys

import numpy as np

from tessera.config import ConfigError
from tessera.pipelines import common
from tessera.training.buildings.config import SynthSceneConfig
from tessera.transforms.buildings.grid import utm_epsg
from tessera.training.buildings.scenes import GSD_M, Scene, render_scene

PROG = "tessera synth-scene"
DEFAULT_CENTER = SynthSceneConfig(output="", seed=0).latlon  # Accra: Open Buildings covers Africa


def scene_geometry(center: tuple[float, float], size_hw: tuple[int, int], gsd: float = GSD_M):
    """(crs EPSG, affine transform) of a scene of size_hw pixels centred near `center` (lat, lon)."""
    from affine import Affine
    from pyproj import Transformer

    epsg = utm_epsg(*center)
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    cx, cy = to_utm.transform(center[1], center[0])
    h, w = size_hw
    x0 = math.floor((cx - w * gsd / 2) / gsd) * gsd
    y0 = math.ceil((cy + h * gsd / 2) / gsd) * gsd
    return epsg, Affine(gsd, 0.0, x0, 0.0, -gsd, y0)


def footprints_geojson(scene: Scene, epsg: int, transform) -> str:
    """The scene's footprints as a GeoJSON FeatureCollection in EPSG:4326 (lon, lat)."""
    import geopandas as gpd
    import shapely

    a, b, c, d, e, f = tuple(transform)[:6]
    to_map = lambda xy: np.stack([a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f], axis=1)
    polys = [shapely.transform(p, to_map) for p in scene.polygons()]
    gdf = gpd.GeoDataFrame({"building_id": np.arange(len(polys), dtype=np.int64),
                            "area_in_meters": [p.area for p in polys]}, geometry=polys, crs=f"EPSG:{epsg}")
    return gdf.to_crs(4326).to_json(drop_id=True)


def geotiff_bytes(image: np.ndarray, epsg: int, transform) -> bytes:
    """3-band uint8 GeoTIFF (tiled, deflate) of an HxWx3 image, in memory."""
    from rasterio.io import MemoryFile

    h, w = image.shape[:2]
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 3, "dtype": "uint8",
               "crs": f"EPSG:{epsg}", "transform": transform, "compress": "deflate",
               "tiled": True, "blockxsize": 256, "blockysize": 256, "photometric": "RGB"}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.transpose(image, (2, 0, 1)))
        return mem.read()


def write_scene(output_dir: str, seed: int, size: int | tuple[int, int] = 1024,
                center: tuple[float, float] = DEFAULT_CENTER) -> dict:
    """Render scene `seed` and write scene.tif + buildings.geojson into `output_dir` (atomically).

    Returns:
      {"image": path, "labels": path, "buildings": n, "crs": "EPSG:...", "seed": seed}.
    """
    from tessera.fileio import atomic_write_bytes, atomic_write_text, join

    scene = render_scene(seed, size)
    epsg, transform = scene_geometry(center, scene.image.shape[:2])
    image_path, labels_path = join(output_dir, "scene.tif"), join(output_dir, "buildings.geojson")
    atomic_write_bytes(image_path, geotiff_bytes(scene.image, epsg, transform))
    atomic_write_text(labels_path, footprints_geojson(scene, epsg, transform))
    return {"image": image_path, "labels": labels_path, "buildings": len(scene.buildings),
            "crs": f"EPSG:{epsg}", "seed": int(seed)}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config, _ = common.parse_config(PROG, __doc__, SynthSceneConfig, argv, beam=False)
    except ConfigError as err:
        return common.input_error(PROG, err)
    info = write_scene(config.output, config.seed, config.size, config.latlon)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
