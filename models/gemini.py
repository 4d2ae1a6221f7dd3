"""`gemini:MODEL`: Gemini models as labellers (the Beam handler: models/handlers/gemini.py).

Nothing is loaded or shipped: MODEL names a Gemini model (e.g. gemini-2.5-flash) served by the
Gemini API or Vertex AI, and every image is one request. Credentials come from the environment
of the launching process: GEMINI_API_KEY (or GOOGLE_API_KEY) for the Gemini API, else
GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION for Vertex AI. There is no tiny checkpoint; tests
run against a fake server on 127.0.0.1 (tests/fixtures/fake_gemini.py).
"""
from __future__ import annotations

import os


class MissingCredentials(ValueError):
    """No API key and no Vertex AI project/location in the environment."""


def credentials_from_env(env=os.environ) -> dict:
    """{'api_key': ...} or {'project': ..., 'location': ...}, as Beam's GeminiModelHandler takes.

    Raises:
        MissingCredentials: neither is set (the message says which variables to set).
    """
    key = env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
    if key:
        return {"api_key": key}
    project, location = env.get("GOOGLE_CLOUD_PROJECT"), env.get("GOOGLE_CLOUD_LOCATION")
    if project and location:
        return {"project": project, "location": location}
    raise MissingCredentials("set GEMINI_API_KEY (Gemini API) or GOOGLE_CLOUD_PROJECT and "
                             "GOOGLE_CLOUD_LOCATION (Vertex AI) in the environment")


def check_ready(model_name: str) -> None:
    """What the registry checks before any worker starts: credentials are there.

    Raises:
        MissingCredentials: a ValueError naming the variables to set.
    """
    del model_name
    credentials_from_env()


def load(path: str, **kwargs):
    """A genai client for the Gemini API or Vertex AI (`path`, the model name, is used per
    request, not here)."""
    del path, kwargs
    from google import genai
    credentials = credentials_from_env()
    if "api_key" in credentials:
        return genai.Client(api_key=credentials["api_key"])
    return genai.Client(vertexai=True, **credentials)


def write_tiny(directory: str, seed: int = 0) -> None:
    """Nothing to write: a hosted model has no local checkpoint."""
    del directory, seed
