"""Beam `ModelHandler` running PaliGemma over `LabelRequest`s (run it with `RunInference`).

Loading happens in `load_model` on the worker (never on the driver); the decoder is jitted once
per (batch size, prompt bucket). Requests the model cannot take (not HxWx3 uint8, prompt too long)
come back as a `LabelResult` with `error` set instead of failing their whole batch; a failure of
the model itself raises, so `RunInference(...).with_exception_handling()` dead-letters the batch.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler

from tessera.models.paligemma.inference import PaliGemma
from tessera.models.paligemma.paths import resolve_paths
from tessera.models.paligemma.postprocess import box_scores, parse_objects
from tessera.models.paligemma.preprocess import check_image
from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.schemas.labels import LabelRequest, LabelResult

class PaliGemmaModelHandler(LabelHandlerMixin, ModelHandler[LabelRequest, LabelResult, PaliGemma]):
    """Labels images with a PaliGemma checkpoint; `LabelRequest` in, `LabelResult` out.

    Args:
      checkpoint_path: big_vision `.npz` (local or gs://).
      tokenizer_path: PaliGemma SentencePiece `.model`.
      resolution: 224, 448 or 896; must match the checkpoint (None: take the checkpoint's).
      max_decode_len: most generated tokens per image.
      batch_size: images per model call (Beam batches up to this; the model pads to it).
      max_prompt_len: longest prompt in tokens.
      dtype: "auto" (bfloat16 on GPU/TPU, float32 on CPU), or force "float32"/"bfloat16".
      default_prompt: used when a request's prompt is empty.
      model_name: written to `LabelResult.model`.
      accelerator: Beam resource hint, e.g. "type:nvidia-l4;count:1;install-nvidia-driver".
      share_across_processes: one copy per worker machine (the 3B model is ~6-12 GB).
    """

    METRICS_NAMESPACE = "tessera_paligemma"

    def __init__(self, checkpoint_path: str, tokenizer_path: str, *, resolution: int | None = None,
                 max_decode_len: int = 64, batch_size: int = 8, max_prompt_len: int = 128,
                 dtype: str = "auto", default_prompt: str = "caption en",
                 model_name: str = "paligemma", accelerator: str | None = None,
                 share_across_processes: bool = False, min_batch_size: int = 1):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size,
                         large_model=share_across_processes)
        self.checkpoint_path = checkpoint_path
        self.tokenizer_path = tokenizer_path
        self.resolution = resolution
        self.max_decode_len = max_decode_len
        self.batch_size = batch_size
        self.max_prompt_len = max_prompt_len
        self.dtype = dtype
        self.default_prompt = default_prompt
        self.model_name = model_name
        self._accelerator = accelerator

    @classmethod
    def from_path(cls, path: str, **kw) -> "PaliGemmaModelHandler":
        """`paligemma:PATH` where PATH is a .npz (tokenizer beside it) or a directory of both."""
        npz, tokenizer = resolve_paths(path)
        return cls(npz, tokenizer, **kw)

    def load_model(self) -> PaliGemma:
        loaded = PaliGemma.load(self.checkpoint_path, self.tokenizer_path,
                                max_decode_len=self.max_decode_len, batch_size=self.batch_size,
                                max_prompt_len=self.max_prompt_len, dtype=self.dtype)
        if self.resolution is not None and self.resolution != loaded.resolution:
            raise ValueError(f"{self.checkpoint_path} is a {loaded.resolution}px checkpoint; "
                             f"resolution={self.resolution} was requested")
        logging.info("PaliGemmaModelHandler: %s at %dpx", self.checkpoint_path, loaded.resolution)
        return loaded

    def run_inference(self, batch: Sequence[LabelRequest], model: PaliGemma,
                      inference_args: dict[str, Any] | None = None) -> Iterable[LabelResult]:
        results: list[LabelResult | None] = [None] * len(batch)
        todo = []
        for i, request in enumerate(batch):
            prompt = request.prompt or self.default_prompt
            reason = check_image(request.image) or model.check_prompt(prompt)
            if reason:
                results[i] = LabelResult(request.key, self.model_name, prompt, "", (), reason)
            else:
                todo.append((i, prompt))
        generations = model.generate([batch[i].image for i, _ in todo], [p for _, p in todo])
        tok = model.tokenizer
        loc_ids = set(tok.loc_ids.values())
        for (i, prompt), gen in zip(todo, generations):
            height, width = batch[i].image.shape[:2]
            scores = box_scores(gen.token_ids, gen.logps, loc_ids, tok.eos_id)
            objects = parse_objects(gen.text, height, width, scores)
            results[i] = LabelResult(batch[i].key, self.model_name, prompt, gen.text,
                                     tuple(o.box for o in objects), None)
        return results
