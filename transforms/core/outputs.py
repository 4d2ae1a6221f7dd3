"""Run manifests, completion markers and dead-letter files, for local and gs:// paths alike.

Files are written through `tessera.fileio` (atomic, local or GCS). A finished output directory
always ends with `manifest.json` and then `COMPLETED`; readers and `--resume` logic trust a
directory only when `is_complete` says so.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import os
import subprocess
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from tessera import fileio
from tessera.fileio import atomic_write_json, atomic_write_text, file_sha256, join, match_paths
from tessera.schemas.records import SCHEMA_VERSION, DeadLetter
from tessera.transforms.core.output_dir import (COMPLETED, MANIFEST, OutputContract, config_sha256,
                                                finish, is_temporary, owned_files)

_HASH_LIMIT_BYTES = 64 << 20  # inputs larger than this are fingerprinted by size and mtime only


def fingerprint_inputs(patterns: str | Iterable[str], max_files: int = 10_000) -> dict:
    """Size/mtime (plus sha256 for small files) of the inputs, and one digest over all of them."""
    metas = sorted(match_paths(patterns), key=lambda m: m.path)
    combined = hashlib.sha256()
    files = []
    for m in metas:
        entry = {"path": m.path, "size": m.size_in_bytes, "mtime": m.last_updated_in_seconds}
        if m.size_in_bytes <= _HASH_LIMIT_BYTES and len(files) < max_files:
            entry["sha256"] = file_sha256(m.path)
        combined.update(json.dumps(entry, sort_keys=True).encode())
        if len(files) < max_files:
            files.append(entry)
    return {"num_files": len(metas), "digest": combined.hexdigest(), "files": files}


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    from importlib import metadata
    try:
        version = metadata.version("tessera")
    except metadata.PackageNotFoundError:
        version = "unknown"
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{version}+g{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return version


def is_complete(output_dir: str) -> bool:
    return fileio.exists(join(output_dir, COMPLETED))


def write_manifest(output_dir: str, *, workload: str, config: Any, inputs: Any = (),
                   model_path: str | None = None, counts: dict | None = None,
                   extra: dict | None = None, code: str | None = None,
                   contract: OutputContract | None = None) -> dict:
    """Write manifest.json, then COMPLETED. `inputs` is globs or an already computed fingerprint.

    With a `contract`, leftover temporary files are removed first and the manifest lists every
    file the run owns (path, bytes), so COMPLETED describes exactly the files beside it and
    --overwrite can remove them all.
    """
    files = None
    if contract is not None:
        listed = owned_files(output_dir, contract)
        stale = [join(output_dir, rel) for rel, _ in listed if is_temporary(rel)]
        if stale:
            fileio.delete(stale)
        files = [{"path": rel, "bytes": size} for rel, size in listed if not is_temporary(rel)]
    if not isinstance(inputs, dict):
        inputs = fingerprint_inputs(inputs) if inputs else {"num_files": 0, "files": []}
    manifest = {
        "workload": workload,
        "config": config,
        "config_sha256": config_sha256(config),
        "code_version": code or code_version(),
        "schema_version": SCHEMA_VERSION,
        "inputs": inputs,
        "model": {"path": model_path, "sha256": file_sha256(model_path)} if model_path else None,
        "counts": dict(sorted((counts or {}).items())),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        **(extra or {}),
    }
    if files is not None:
        manifest["files"] = files
    atomic_write_json(join(output_dir, MANIFEST), manifest)
    atomic_write_text(join(output_dir, COMPLETED), manifest["created_at"] + "\n")
    finish(output_dir)
    logging.info("%s: wrote %s and %s in %s", workload, MANIFEST, COMPLETED, output_dir)
    return manifest


def _dead_letter_json(letter: DeadLetter) -> str:
    Metrics.counter("dead_letters", letter.reason).inc()
    Metrics.counter("dead_letters", "total").inc()
    return json.dumps(letter.to_dict(), sort_keys=True)


class WriteDeadLetters(beam.PTransform):
    """PCollection[DeadLetter] -> JSONL shards in `output_dir/<subdir>/`; returns written file names."""

    def __init__(self, output_dir: str, subdir: str = "errors", prefix: str = "dead_letters"):
        super().__init__()
        self._prefix = join(output_dir, subdir, prefix)

    def expand(self, letters):
        return (letters
                | "ToJson" >> beam.Map(_dead_letter_json)
                | "Write" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl"))


class _WriteManifestFn(beam.DoFn):
    def __init__(self, output_dir, workload, config, inputs, model_path, extra, code, contract):
        self._args = (output_dir, workload, config, inputs, model_path, extra, code, contract)

    def process(self, counts):
        output_dir, workload, config, inputs, model_path, extra, code, contract = self._args
        write_manifest(output_dir, workload=workload, config=config, inputs=inputs,
                       model_path=model_path, counts=counts, extra=extra, code=code,
                       contract=contract)
        yield join(output_dir, COMPLETED)


class FinalizeOutput(beam.PTransform):
    """Applied to `{name: PCollection}`: counts each, then writes manifest.json and COMPLETED once.

    Pass the PCollections that the write steps return (file names), so the marker can only be
    written after every file exists. Input fingerprints are computed once, at construction.
    """

    def __init__(self, output_dir: str, *, workload: str, config: Any, inputs: Any = (),
                 model_path: str | None = None, extra: dict | None = None,
                 contract: OutputContract | None = None):
        super().__init__()
        fingerprint = inputs if isinstance(inputs, dict) else (
            fingerprint_inputs(inputs) if inputs else {"num_files": 0, "files": []})
        self._fn = _WriteManifestFn(output_dir, workload, config, fingerprint, model_path, extra,
                                    code_version(), contract)

    def expand(self, named):
        counts = [
            pcoll
            | f"Count_{name}" >> beam.combiners.Count.Globally()
            | f"Name_{name}" >> beam.Map(lambda n, name=name: (name, n))
            for name, pcoll in sorted(named.items())
        ]
        return (counts
                | "FlattenCounts" >> beam.Flatten()
                | "ToDict" >> beam.combiners.ToDict()
                | "WriteManifest" >> beam.ParDo(self._fn))
