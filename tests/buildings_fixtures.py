"""Small GeoTIFFs and a deterministic stand-in model for the buildings tests.

The stand-in's "probability" is the red band, so border behaviour is tested exactly, independent of
the trained U-Net. Module-level functions so Beam can pickle them.
"""
from __future__ import annotations

import numpy as np

from models.base import JaxModel

EPSG = 32633          # UTM 33N
RES = 0.5             # metres per pixel
X0, Y0 = 500_000.0, 4_000_000.0  # multiples of RES * 32: file pixel (0, 0) is on a window corner


def red_band_probability(params, batch):
    return batch[..., 0] * params["scale"]


def load_red_band(path: str) -> JaxModel:
    del path
    return JaxModel(apply_fn=red_band_probability, params={"scale": np.float32(1.0)},
                    input_shape=None, input_dtype="float32", name="red_band")


def write_tif(path, array, *, col0: int = 0, row0: int = 0, nodata=None, crs=True, dtype=None):
    """Write [bands, H, W] at file pixel offset (row0, col0) from (X0, Y0) of the shared grid."""
    import rasterio
    from rasterio.transform import from_origin
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    profile = dict(driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
                   dtype=dtype or array.dtype.name, nodata=nodata)
    if crs:
        profile.update(crs=f"EPSG:{EPSG}", transform=from_origin(X0 + col0 * RES, Y0 - row0 * RES, RES, RES))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(array)
    return str(path)


def rgb_scene(height: int, width: int, boxes, value: int = 230) -> np.ndarray:
    """[3, H, W] uint8: dark ground and bright-red rectangles (row0, col0, row1, col1)."""
    img = np.full((3, height, width), 40, np.uint8)
    img[0] = 0
    for r0, c0, r1, c1 in boxes:
        img[0, r0:r1, c0:c1] = value
    return img
