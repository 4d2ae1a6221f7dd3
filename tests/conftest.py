"""Shared test set-up: quiet logs, CPU-only JAX, and the repo root on sys.path."""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Pipelines built without --runner (TestPipeline(), beam.Pipeline()) run on the FnApiRunner, as
# `tessera` commands do: Beam's DirectRunner would first try to download its Prism runner.
from apache_beam.options.pipeline_options import StandardOptions  # noqa: E402

StandardOptions.DEFAULT_RUNNER = "FnApiRunner"


# The suites that start local servers (tests/portable: Beam's job service and worker pool;
# tests/gcs: a GCS emulator too) run through `make test-portable` and `make test-gcs`. Elsewhere
# they are deselected, unless named: by path (pytest tests/gcs) or marker (-m portable).
SERVER_SUITES = {"portable": os.path.join(ROOT, "tests", "portable"), "gcs": os.path.join(ROOT, "tests", "gcs")}


def _named(config, suite: str) -> bool:
    if suite in (config.option.markexpr or ""):
        return True
    folder = SERVER_SUITES[suite]
    paths = [os.path.abspath(str(arg).split("::")[0]) for arg in config.args]
    return any(os.path.commonpath([p, folder]) == folder for p in paths)


def pytest_collection_modifyitems(config, items):
    skipped = {suite for suite in SERVER_SUITES if not _named(config, suite)}
    if not skipped:
        return
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(s) for s in skipped) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
