"""The dev split: each tile's west and east halves keep the pixel grid, every building lands in
exactly one half (by centroid, whole), free regions are clipped to each half."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin

from tessera.training.buildings import dev_split


def test_halves_keep_the_grid_and_share_out_every_building(tmp_path):
    transform = from_origin(500000.0, 6000100.0, 0.5, 0.5)  # 200 x 100 px at 0.5 m: 100 m x 50 m
    image = tmp_path / "tile.tif"
    pixels = np.arange(100 * 200, dtype=np.uint16).reshape(1, 100, 200)
    with rasterio.open(image, "w", driver="GTiff", width=200, height=100, count=1, dtype="uint16",
                       crs="EPSG:32631", transform=transform) as dst:
        dst.write(pixels)
    x0, top = 500000.0, 6000100.0
    houses = [shapely.box(x0 + 10, top - 20, x0 + 20, top - 10),   # west
              shapely.box(x0 + 45, top - 30, x0 + 54, top - 20),   # straddles, centroid west (49.5)
              shapely.box(x0 + 70, top - 40, x0 + 80, top - 30)]   # east
    labels = tmp_path / "tile.geojson"
    gpd.GeoDataFrame({"building_id": [1, 2, 3]}, geometry=houses, crs=32631).to_crs(4326).to_file(labels)
    free = tmp_path / "tile.free.geojson"
    gpd.GeoDataFrame({"kind": ["lawn"]}, geometry=[shapely.box(x0 + 30, top - 50, x0 + 70, top - 40)],
                     crs=32631).to_crs(4326).to_file(free)

    counts = dev_split.split_tile(str(image), str(labels), str(free), str(tmp_path / "out"))

    assert counts == {"west": 2, "east": 1}
    for half, first_col in (("west", 0), ("east", 100)):
        with rasterio.open(tmp_path / "out" / half / "images" / "tile.tif") as src:
            assert src.width == 100 and src.crs.to_epsg() == 32631
            assert np.array_equal(src.read(), pixels[:, :, first_col:first_col + 100])
            assert src.transform.c == x0 + first_col * 0.5
        kept = gpd.read_file(tmp_path / "out" / half / "labels" / "tile.geojson").to_crs(32631)
        assert sorted(kept.building_id) == ([1, 2] if half == "west" else [3])
        region = gpd.read_file(tmp_path / "out" / half / "free" / "tile.free.geojson").to_crs(32631)
        assert abs(region.area.sum() - 200.0) < 1.0  # 20 m x 10 m on each side of the middle
