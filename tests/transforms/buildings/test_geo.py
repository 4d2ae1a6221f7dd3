"""Open Buildings fields (areas vs geodesic, Plus Code, S2) and the GeoParquet / CSV writers."""
from __future__ import annotations

import copy
import numpy as np
import gzip
import json
import os

import geopandas as gpd
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import Polygon, box

from tessera.transforms.buildings import geoparquet
from tessera.transforms.buildings.fields import building_record, geodesic_area_m2, plus_code, s2_token, to_lonlat

UTM33 = CRS.from_epsg(32633).to_wkt()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _geodesic_rectangle(lon, lat, east_m, north_m):
    """Corners walked along geodesics on the ellipsoid: an independent ground-truth footprint."""
    g = Geod(ellps="WGS84")
    lon1, lat1, _ = g.fwd(lon, lat, 90, east_m)
    lon2, lat2, _ = g.fwd(lon1, lat1, 0, north_m)
    lon3, lat3, _ = g.fwd(lon, lat, 0, north_m)
    return Polygon([(lon, lat), (lon1, lat1), (lon2, lat2), (lon3, lat3)])


@pytest.mark.parametrize("lon, lat", [(15.0, 36.0), (12.2, 36.0), (15.0, 60.0)])
def test_area_in_meters_matches_geodesic_within_one_percent(lon, lat):
    # A 40 m x 25 m building (1000 m^2) on the ground, expressed in UTM 33N (zone centre and 2.8
    # degrees off it, where UTM's scale error is largest), then through the pipeline's fields.
    truth = _geodesic_rectangle(lon, lat, 40.0, 25.0)
    to_utm = Transformer.from_crs(4326, 32633, always_xy=True)
    utm = shapely.transform(truth, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))
    record = building_record(utm, UTM33, confidence=0.9, source="t")
    assert record.area_in_meters == pytest.approx(1000.0, rel=0.01)
    # and against an equal-area projection centred on the building (a second, independent method)
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=WGS84")
    to_laea = Transformer.from_crs(4326, laea, always_xy=True)
    lonlat = shapely.from_wkb(record.geometry)
    planar = shapely.transform(lonlat, lambda xy: np.column_stack(to_laea.transform(xy[:, 0], xy[:, 1])))
    assert record.area_in_meters == pytest.approx(planar.area, rel=0.01)


def test_geodesic_area_subtracts_holes():
    outer = _geodesic_rectangle(15.0, 36.0, 20, 20)
    hole = shapely.affinity.scale(outer, 0.5, 0.5)
    donut = Polygon(outer.exterior.coords, [hole.exterior.coords])
    assert geodesic_area_m2(donut) == pytest.approx(400 - 100, rel=0.01)


def test_fields_centroid_plus_code_and_s2():
    record = building_record(box(500000, 4000000, 500020, 4000010), UTM33, confidence=0.75, source="w")
    centre = to_lonlat(box(500000, 4000000, 500020, 4000010).centroid, UTM33)
    assert (record.longitude, record.latitude) == pytest.approx((centre.x, centre.y))
    assert record.longitude == pytest.approx(15.0, abs=1e-3)  # x = 500 km is the zone's meridian
    from openlocationcode import openlocationcode as olc
    area = olc.decode(record.full_plus_code)
    assert area.latitudeLo <= record.latitude <= area.latitudeHi
    assert area.longitudeLo <= record.longitude <= area.longitudeHi
    assert len(record.full_plus_code) == 12 and record.full_plus_code[8] == "+"
    import s2sphere
    cell = s2sphere.CellId.from_token(record.s2_token)
    assert cell.level() == 10
    assert cell.contains(s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(record.latitude, record.longitude)))
    assert s2_token(record.latitude, record.longitude, 4) == cell.parent(4).to_token()
    assert plus_code(0.0, 0.0, 10) == "6FG22222+22"
    xmin, ymin, xmax, ymax = record.bbox
    assert xmin < record.longitude < xmax and ymin < record.latitude < ymax


def _records():
    return [building_record(box(500000 + 30 * i, 4000000, 500020 + 30 * i, 4000010), UTM33,
                            confidence=0.5 + 0.1 * i, source=f"w{i}") for i in range(3)]


def test_geoparquet_metadata_validates_against_schema_and_reads_back(tmp_path):
    records = _records()
    paths = geoparquet.write_partition(str(tmp_path), records[0].s2_token, records)
    assert paths == [str(tmp_path / "buildings" / f"s2_token={records[0].s2_token}" / "part-00000.parquet")]
    meta = json.loads(pq.read_schema(paths[0]).metadata[b"geo"])
    geoparquet.validate_geo_metadata(meta)
    assert meta["version"] == "1.1.0" and meta["primary_column"] == "geometry"
    col = meta["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Polygon"]
    assert col["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert col["bbox"][0] == pytest.approx(min(r.bbox[0] for r in records))
    gdf = gpd.read_parquet(tmp_path / "buildings")
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == 3
    assert set(gdf.s2_token.astype(str)) == {records[0].s2_token}
    assert gdf.geometry.iloc[0].bounds[0] == pytest.approx(15.0, abs=0.01)  # x is longitude
    assert sorted(gdf.area_in_meters) == pytest.approx([200.0] * 3, rel=0.01)


def test_invalid_metadata_is_rejected_before_writing():
    table = geoparquet.buildings_table(_records())
    meta = geoparquet.geo_metadata(table)
    for breaking in (lambda m: m.update(version="1.0.0"),
                     lambda m: m["columns"]["geometry"].update(encoding="WKT"),
                     lambda m: m["columns"]["geometry"]["covering"]["bbox"].update(xmin=["bbox", "x"]),
                     lambda m: m["columns"]["geometry"].update(crs={"type": "NotACRS"})):
        bad = copy.deepcopy(meta)
        breaking(bad)
        with pytest.raises(ValueError):
            geoparquet.validate_geo_metadata(bad, table)


def test_csv_writer_official_header_wkt_gzip(tmp_path):
    records = _records()
    (path,) = geoparquet.write_partition(str(tmp_path), "abc", records, fmt="csv")
    assert os.path.basename(path) == "abc_buildings.csv.gz"
    lines = gzip.decompress(open(path, "rb").read()).decode().splitlines()
    assert lines[0] == "latitude,longitude,area_in_meters,confidence,geometry,full_plus_code"
    assert len(lines) == 4 and '"POLYGON ((' in lines[1]
    geom = shapely.from_wkt(lines[1].split('"')[1])
    assert geodesic_area_m2(geom) == pytest.approx(200.0, rel=0.01)


# sha256 of the official GeoParquet 1.1.0 JSON schema (json.dumps(sort_keys=True) of its content)
OFFICIAL_SPEC_SHA256 = "62b389c7b96c9d6d38e90ed49e70035571183ecbc408b076172779260a2cd309"


def test_packaged_schema_is_the_official_spec():
    """Checked in every checkout (no skip): the packaged copy hashes to the official schema."""
    import hashlib
    with open(os.path.join(REPO, "schemas", "geoparquet-1.1.0.schema.json")) as f:
        content = json.load(f)
    assert hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest() == OFFICIAL_SPEC_SHA256
