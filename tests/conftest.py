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
