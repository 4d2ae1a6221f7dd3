"""`make real-data`'s pieces that need no download: archive members read exactly (tar.gz and wheel),
a missing member is one clear error, writes are atomic, the held-out tile is named as such."""
from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from tessera.training.buildings import real_data


def test_members_are_read_exactly_from_sdists_and_wheels(tmp_path):
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, data in (("pkg-1.0/data/a.tif", b"AAAA"), ("pkg-1.0/other.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("data/a.tif", b"AAAA")
    assert real_data.read_members(sdist, {"pkg-1.0/data/a.tif"}) == {"pkg-1.0/data/a.tif": b"AAAA"}
    assert real_data.read_members(wheel, {"data/a.tif"}) == {"data/a.tif": b"AAAA"}
    with pytest.raises(real_data.FetchError, match="missing member"):
        real_data.read_members(wheel, {"data/a.tif", "data/b.tif"})


def test_writes_are_atomic_and_the_test_tile_is_declared_held_out(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    real_data.write_atomic(target, b"data")
    assert target.read_bytes() == b"data" and [p.name for p in target.parent.iterdir()] == ["f.bin"]
    outputs = [out for _, _, out in real_data.MEMBERS]
    assert {o for o in outputs if o.startswith("test/")} == {
        "test/atlanta_sample_geotiff.tif", "test/atlanta_geotiff_labels.geojson"}
    assert "HELD-OUT TEST SET" in real_data.TEST_README
    assert all(len(v[4]) == 64 for v in real_data.ARCHIVES.values())  # every archive pinned by sha256
