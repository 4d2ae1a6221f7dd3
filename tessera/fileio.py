"""The one file layer: every path Tessera reads or writes, local or gs://, goes through here.

Paths go through Beam's `FileSystems`, so the same call reads a laptop disk or GCS, on the driver
and on workers. Writes are atomic: data goes to a temporary sibling that is then renamed, so a path
is never seen half-written. Where Beam is not installed (a bare accelerator machine that only
trains), local paths still work, through the same functions.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
from typing import Any, BinaryIO, Iterable

try:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
except ImportError:  # no apache_beam: local files only
    FileSystems = None
    CompressionTypes = None


_DELETE_BATCH = 100  # paths per delete call (GCS batch requests take at most 100)


def is_remote(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if FileSystems else os.path.join(base, *parts)


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and not is_remote(path):
        os.makedirs(parent, exist_ok=True)


def open_read(path: str, uncompressed: bool = False) -> BinaryIO:
    """A binary reader; `uncompressed=True` reads .gz files as stored instead of decompressing."""
    if FileSystems is None:
        return open(path, "rb")
    if uncompressed:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return FileSystems.open(path)


def create(path: str) -> BinaryIO:
    """A binary writer at `path` (parents made for local paths); prefer the atomic writers below."""
    _ensure_parent(path)
    if FileSystems is None:
        return open(path, "wb")
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def exists(path: str) -> bool:
    return FileSystems.exists(path) if FileSystems else os.path.exists(path)


def delete(paths: list[str]) -> None:
    if FileSystems is None:
        for p in paths:
            os.remove(p)
        return
    FileSystems.delete(paths)


def temp_path(path: str) -> str:
    """A unique sibling of `path` to write to before `replace(tmp, path)` (streamed outputs)."""
    _ensure_parent(path)
    return f"{path}.tmp-{uuid.uuid4().hex[:12]}"


def replace(tmp: str, path: str) -> None:
    """Move a finished temporary file over `path`."""
    if FileSystems is None:
        os.replace(tmp, path)
        return
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write `data` to a temporary sibling, then rename, so `path` is never seen half-written."""
    tmp = temp_path(path)
    with create(tmp) as f:
        f.write(data)
    replace(tmp, path)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def remove_tree(path: str) -> None:
    """Delete a directory and everything under it; a missing one is fine.

    On an object store (gs://) a "directory" is only a name prefix: no object is called `path`,
    so deleting `path` itself would silently delete nothing. Every object under `path/` is listed
    and deleted instead.
    """
    path = path.rstrip("/")
    if not is_remote(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        return
    files = list_tree(path)
    for start in range(0, len(files), _DELETE_BATCH):
        FileSystems.delete(files[start:start + _DELETE_BATCH])
    left = list_tree(path)
    if left:
        raise OSError(f"could not delete {len(left)} files under {path} (first: {left[0]})")


def list_tree(path: str) -> list[str]:
    """Every file under the directory `path` (local, or an object prefix on gs://), sorted."""
    path = path.rstrip("/")
    if not is_remote(path):
        return sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files)
    return sorted(m.path for m in match_paths(join(path, "**")))


def is_dir(path: str) -> bool:
    """A local directory, or an object-store prefix with at least one object under it (GCS has no
    directories: `exists` is False for a prefix, even a full one)."""
    if not is_remote(path):
        return os.path.isdir(path)
    return bool(list_tree(path))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open_read(path) as f:
        for chunk in iter(functools.partial(f.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def match_paths(patterns: str | Iterable[str]) -> list:
    """FileMetadata for every file matching the glob(s); an empty match is not an error here."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    return [m for result in FileSystems.match(patterns) for m in result.metadata_list]
