"""The one output-directory contract every workload follows, local or gs://.

An output directory is either a finished, consistent run (`COMPLETED` beside a `manifest.json`
that lists every file the run wrote) or clearly not one. Before a run, `prepare` decides:

  COMPLETED, same config hash   -> skip (nothing to do; exit 0)
  COMPLETED, other config       -> refuse, unless --overwrite
  unfinished run (no COMPLETED) -> --resume continues it (resumable workloads, same config),
                                   otherwise refuse (resumable) or start over (the others)
  --overwrite                   -> the marker goes first, then every file the old run owned

A workload owns only the names it declares (`OutputContract.owned`), so files a user keeps beside
them are never touched. While a run is under way `_RUNNING.json` records its config hash, so a
`--resume` with other settings is refused instead of mixing two runs in one directory.
"""
from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import json
import logging
import os
from typing import Any

from tessera import fileio
from tessera.fileio import join

COMPLETED = "COMPLETED"
MANIFEST = "manifest.json"
RUNNING = "_RUNNING.json"
TEMP_MARK = ".tmp-"  # tessera.fileio.temp_path names


def config_sha256(config: Any) -> str:
    """The hash a manifest records; equal hashes mean a rerun would write the same outputs."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


class OutputDirError(ValueError):
    """The output directory cannot take this run; the message says why and what to pass."""


@dataclasses.dataclass(frozen=True)
class OutputContract:
    """What a workload writes: `owned` names are files (`stats.json`, `mixture-*`) or folders
    ending in '/' (`errors/`); `resumable` workloads continue an unfinished run with --resume."""
    workload: str
    owned: tuple[str, ...]
    resumable: bool = False

    def patterns(self, output: str) -> list[str]:
        """Globs matching every file the workload owns under `output` (temporary ones too)."""
        out = []
        for name in self.owned:
            if name.endswith("/"):
                out.append(join(output, name.rstrip("/"), "**"))
            else:
                out.extend([join(output, name), join(output, name + TEMP_MARK + "*")])
        return out


def is_temporary(relative_path: str) -> bool:
    """A killed or retried writer's leftover: ours (`name.tmp-<id>`) or a Beam text sink's
    `beam-temp-*` folder. Never part of a finished run."""
    parts = relative_path.split("/")
    return TEMP_MARK in parts[-1] or any(p.startswith("beam-temp-") for p in parts[:-1])


def owned_files(output: str, contract: OutputContract) -> list[tuple[str, int]]:
    """(path relative to `output`, size) of every file the workload owns there, sorted."""
    prefix = output.rstrip("/") + "/"
    found = {m.path: m.size_in_bytes for m in fileio.match_paths(contract.patterns(output))
             if not (not fileio.is_remote(m.path) and os.path.isdir(m.path))}
    return sorted((path[len(prefix):] if path.startswith(prefix) else path, size)
                  for path, size in found.items())


def read_manifest(output: str) -> dict | None:
    path = join(output, MANIFEST)
    if not fileio.exists(path):
        return None
    try:
        return json.loads(fileio.read_bytes(path))
    except (ValueError, OSError):
        return None


def _check_not_a_file(output: str) -> None:
    """A file where the directory (or one of its parents) should be fails every write later."""
    if fileio.is_remote(output):
        return
    path = os.path.abspath(output)
    while True:
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise OutputDirError(f"--output {output}: {path} is a file; give a directory "
                                     "(it is created if missing)")
            return
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _differences(old: dict, new: dict) -> list[str]:
    new = json.loads(json.dumps(new, default=str))  # as the manifest stored it (tuples -> lists)
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def remove_owned(output: str, contract: OutputContract, manifest: dict | None = None) -> int:
    """Delete what a previous run owned: its marker first (so a crash midway never leaves a
    COMPLETED describing missing files), every file its manifest lists, every owned name, and
    last its manifest. Returns how many files were deleted."""
    marker = join(output, COMPLETED)
    if fileio.exists(marker):
        fileio.delete([marker])
    listed = [join(output, f["path"]) for f in (manifest or {}).get("files", [])]
    paths = sorted(set(listed) | {join(output, rel) for rel, _ in owned_files(output, contract)})
    paths = [p for p in paths if fileio.exists(p)]
    for start in range(0, len(paths), 100):  # a GCS batch request takes at most 100
        fileio.delete(paths[start:start + 100])
    for name in contract.owned:
        if name.endswith("/") and "*" not in name:
            fileio.remove_tree(join(output, name))
        elif name.endswith("/") and not fileio.is_remote(output):  # empty local folders of a glob
            for folder in glob.glob(os.path.join(output, name.rstrip("/"))):
                fileio.remove_tree(folder)
    for name in (MANIFEST, RUNNING):
        path = join(output, name)
        if fileio.exists(path):
            fileio.delete([path])
    return len(paths)


def prepare(output: str, contract: OutputContract, config: dict[str, Any], *,
            overwrite: bool = False, resume: bool = False) -> bool:
    """Apply the contract before a run. Returns False when the run is already done (skip).

    Raises:
        OutputDirError: the directory holds another run and neither --overwrite nor a valid
            --resume was given, or the output path is a file.
    """
    _check_not_a_file(output)
    digest = config_sha256(config)
    manifest = read_manifest(output)
    complete = fileio.exists(join(output, COMPLETED))
    if complete and not overwrite:
        if manifest and manifest.get("config_sha256") == digest:
            logging.info("%s: %s is already COMPLETED with the same config; nothing to do "
                         "(--overwrite redoes it)", contract.workload, output)
            return False
        differing = _differences((manifest or {}).get("config", {}), config)
        raise OutputDirError(
            f"{output} holds a COMPLETED {(manifest or {}).get('workload', 'run')} with another "
            f"config (differs in: {', '.join(differing) or 'unknown'}); pass --overwrite to "
            "replace it, or choose another --output")
    leftovers = owned_files(output, contract)
    if overwrite:
        removed = remove_owned(output, contract, manifest)
        if removed:
            logging.info("%s: --overwrite removed %d files of the previous run in %s",
                         contract.workload, removed, output)
    elif resume and leftovers:
        _check_resume(output, contract, digest)
    elif leftovers:
        if contract.resumable:
            raise OutputDirError(
                f"{output} holds an unfinished {contract.workload} run ({len(leftovers)} files); "
                "pass --resume to continue it or --overwrite to start over")
        logging.info("%s: removing %d files of an unfinished run in %s", contract.workload,
                     len(leftovers), output)
        remove_owned(output, contract)
    fileio.atomic_write_json(join(output, RUNNING), {
        "workload": contract.workload, "config_sha256": digest,
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    return True


def _check_resume(output: str, contract: OutputContract, digest: str) -> None:
    if not contract.resumable:
        raise OutputDirError(f"--resume: {contract.workload} cannot resume; rerun without it")
    running = join(output, RUNNING)
    if fileio.exists(running):
        started = json.loads(fileio.read_bytes(running))
        if started.get("config_sha256") != digest:
            raise OutputDirError(
                f"--resume: the unfinished run in {output} used another config; rerun it with "
                "the same flags, or pass --overwrite to start over")


def finish(output: str) -> None:
    """After COMPLETED: the run is no longer under way."""
    path = join(output, RUNNING)
    if fileio.exists(path):
        fileio.delete([path])
