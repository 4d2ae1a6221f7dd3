"""Tessera: vision research workloads as Apache Beam pipelines.

The code is installed under one namespace so nothing collides on a worker: `tessera.schemas`,
`tessera.transforms`, `tessera.models`, `tessera.training` and `tessera.pipelines` (their sources
are the repository's top-level folders; see setup.py).
"""
__version__ = "0.1.0"
