"""Gemini as a labelling model, through Beam's own `GeminiModelHandler`.

Beam's handler sends a whole batch as one `generate_content` call (one answer per batch); a
labelling job needs one answer per image. `GeminiLabelHandler` keeps everything else of Beam's
handler (the genai client for the Gemini API or Vertex AI, client-side throttling, its retry of
a failing request) and sends one request per image, a few at a time, each with the image and the
prompt. Throttling (429), server errors (5xx) and dropped connections are retried per image with exponential backoff;
an image Gemini refuses (4xx, a blocked or empty answer) becomes a LabelResult with `error`, so it
lands in `errors/` and the rest of the batch is kept.

Credentials: models/gemini.py. GOOGLE_GEMINI_BASE_URL points the client at another endpoint (the
tests' fake server).
"""
from __future__ import annotations

import concurrent.futures
import io
import time
from typing import Any, Sequence

from apache_beam.ml.inference.gemini_inference import GeminiModelHandler

from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.schemas.labels import LabelRequest, LabelResult

RETRIABLE_CODES = (429, 500, 502, 503, 504)


def png_bytes(image) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _status(error: Exception) -> int | None:
    return getattr(error, "code", None)


class GeminiLabelHandler(LabelHandlerMixin, GeminiModelHandler):
    """LabelRequest in, LabelResult out: one Gemini request per image."""

    METRICS_NAMESPACE = "label_gemini"

    def __init__(self, model_name: str, *, prompt: str = "", max_batch_size: int = 8,
                 concurrency: int = 8, max_attempts: int = 5, first_delay_s: float = 1.0,
                 **credentials):
        super().__init__(model_name, request_fn=None, min_batch_size=1,
                         max_batch_size=max_batch_size, **credentials)
        self._prompt, self._concurrency = prompt, concurrency
        self._max_attempts, self._first_delay_s = max_attempts, first_delay_s

    def request(self, batch: Sequence[LabelRequest], model: Any,
                inference_args: dict | None = None) -> list[LabelResult]:
        workers = max(1, min(self._concurrency, len(batch)))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda r: self._label_one(r, model, inference_args or {}), batch))

    def _label_one(self, request: LabelRequest, client: Any, inference_args: dict) -> LabelResult:
        import httpx
        from google.genai import errors, types
        prompt = request.prompt or self._prompt
        contents = [types.Part.from_bytes(data=png_bytes(request.image), mime_type="image/png"),
                    prompt]
        name = f"gemini:{self.model_name}"
        delay = self._first_delay_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = client.models.generate_content(model=self.model_name, contents=contents,
                                                           **inference_args)
            except (errors.APIError, httpx.TransportError) as err:
                status = _status(err)
                retriable = status in RETRIABLE_CODES or isinstance(err, httpx.TransportError)
                if retriable and attempt < self._max_attempts:
                    time.sleep(delay)
                    delay *= 2
                    continue
                what = f"HTTP {status}: {err.message}" if status else f"{type(err).__name__}: {err}"
                return LabelResult(key=request.key, model=name, prompt=prompt, text="",
                                   error=f"gemini_failed: {what} (after {attempt} attempts)")
            text = response.text
            if not text:
                reason = _finish_reason(response)
                return LabelResult(key=request.key, model=name, prompt=prompt, text="",
                                   error=f"gemini_empty: no text in the answer ({reason})")
            return LabelResult(key=request.key, model=name, prompt=prompt, text=text)
        raise AssertionError("unreachable")


def _finish_reason(response) -> str:
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        feedback = getattr(response, "prompt_feedback", None)
        return f"blocked: {getattr(feedback, 'block_reason', None)}" if feedback else "no candidates"
    return f"finish reason {candidates[0].finish_reason}"
