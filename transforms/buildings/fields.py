"""Open Buildings fields of a polygon in a projected CRS: lon/lat geometry, true area, Plus Code, S2.

Pure functions (pyproj, shapely, openlocationcode, s2sphere); no Beam, no I/O.
`area_in_meters` is the geodesic area on the WGS84 ellipsoid (pyproj.Geod), not the planar area in
the raster CRS: UTM's scale error (up to ~0.1% inside a zone, more outside it) never leaks in.
"""
from __future__ import annotations

import functools

import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from tessera.schemas.buildings import Building

DEFAULT_S2_LEVEL = 10  # ~80 km^2 cells: a few thousand buildings per file in dense areas.
DEFAULT_PLUS_CODE_LENGTH = 11  # ~3 x 3.5 m: finer than a building, as in Open Buildings.


@functools.lru_cache(maxsize=32)
def _to_wgs84(crs_wkt: str):
    from pyproj import CRS, Transformer
    return Transformer.from_crs(CRS.from_user_input(crs_wkt), CRS.from_epsg(4326), always_xy=True)


@functools.lru_cache(maxsize=1)
def _geod():
    from pyproj import Geod
    return Geod(ellps="WGS84")


def to_lonlat(geometry: BaseGeometry, crs_wkt: str) -> BaseGeometry:
    """Reproject a geometry from `crs_wkt` to WGS84 with x = longitude, y = latitude."""
    transformer = _to_wgs84(crs_wkt)
    return shapely.transform(geometry, lambda xy: _stack(*transformer.transform(xy[:, 0], xy[:, 1])))


def _stack(x, y):
    import numpy as np
    return np.column_stack([x, y])


def geodesic_area_m2(lonlat_geometry: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, in m^2, of a lon/lat polygon (holes subtracted)."""
    area, _ = _geod().geometry_area_perimeter(shapely.orient_polygons(lonlat_geometry))
    return abs(float(area))


def plus_code(lat: float, lon: float, length: int = DEFAULT_PLUS_CODE_LENGTH) -> str:
    """Full Plus Code (Open Location Code) of a point."""
    from openlocationcode import openlocationcode as olc
    return olc.encode(lat, lon, length)


def s2_token(lat: float, lon: float, level: int = DEFAULT_S2_LEVEL) -> str:
    """Token of the S2 cell at `level` that contains the point."""
    import s2sphere
    if not 0 <= level <= 30:
        raise ValueError(f"S2 level must be in [0, 30], got {level}")
    cell = s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(lat, lon)).parent(level)
    return cell.to_token()


def building_record(polygon: Polygon, crs_wkt: str, *, confidence: float, source: str,
                    s2_level: int = DEFAULT_S2_LEVEL,
                    plus_code_length: int = DEFAULT_PLUS_CODE_LENGTH) -> Building:
    """All output fields of one building polygon given in the raster CRS.

    The centroid is taken in the raster CRS (a conformal, locally planar projection) and then
    reprojected, which is what a surveyor would call the footprint's centre.
    """
    lonlat = shapely.orient_polygons(to_lonlat(polygon, crs_wkt))
    centroid = to_lonlat(polygon.centroid, crs_wkt)
    lon, lat = float(centroid.x), float(centroid.y)
    return Building(
        latitude=lat, longitude=lon,
        area_in_meters=geodesic_area_m2(lonlat),
        confidence=float(confidence),
        geometry=shapely.to_wkb(lonlat),
        full_plus_code=plus_code(lat, lon, plus_code_length),
        bbox=tuple(float(v) for v in lonlat.bounds),
        s2_token=s2_token(lat, lon, s2_level),
        source=source,
    )
