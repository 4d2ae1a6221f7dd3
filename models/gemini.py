"""`gemini:MODEL`: Gemini models as labellers (the handler: models/handlers/gemini.py).

Nothing is loaded or shipped: MODEL names a Gemini model (e.g. gemini-2.5-flash) served by the
Gemini API or Vertex AI, and every image is one request. There is no tiny checkpoint; tests run
against a fake server on 127.0.0.1 (tests/fixtures/fake_gemini.py).
"""
from __future__ import annotations


def load(path: str, **kwargs):
    """A genai client for MODEL `path`, credentials from the environment (what workers use)."""
    from tessera.models.handlers.gemini import GeminiLabelHandler, credentials_from_env
    return GeminiLabelHandler(path, **credentials_from_env(), **kwargs).create_client()


def write_tiny(directory: str, seed: int = 0) -> None:
    """Nothing to write: a hosted model has no local checkpoint."""
    del directory, seed
