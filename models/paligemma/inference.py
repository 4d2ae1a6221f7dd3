"""A loaded PaliGemma: device-resident parameters, tokenizer and one jitted greedy decoder.

Shapes are fixed per (batch size, prompt bucket), so a job compiles a handful of programs once:
batches are padded to `batch_size` rows (padding rows cost no decode steps) and prompts to the next
of a few lengths.
"""
from __future__ import annotations

import dataclasses
import functools
import logging

import ml_dtypes
import numpy as np

from tessera.models.paligemma import hf
from tessera.models.paligemma import model
from tessera.models.paligemma.configs import PaliGemmaConfig
from tessera.models.paligemma.preprocess import preprocess
from tessera.models.paligemma.tokenizer import PaliGemmaTokenizer


DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def resolve_dtype(dtype: str) -> str:
    """"auto": bfloat16 on GPU/TPU (half the memory, full speed), float32 on CPU."""
    if dtype == "auto":
        import jax
        return "float32" if jax.default_backend() == "cpu" else "bfloat16"
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}")
    return dtype


@dataclasses.dataclass(frozen=True)
class Generation:
    text: str
    token_ids: tuple[int, ...]
    logps: tuple[float, ...]


def prompt_buckets(max_prompt_len: int) -> tuple[int, ...]:
    sizes, n = [], 16
    while n < max_prompt_len:
        sizes.append(n)
        n *= 2
    return tuple(sizes) + (max_prompt_len,)


class PaliGemma:
    """Greedy captioning/detection/OCR/VQA with a PaliGemma checkpoint.

    Args:
      params: {"img", "llm"} numpy tree (e.g. from `checkpoint.load_checkpoint`).
      cfg: its config.
      tokenizer: the PaliGemma SentencePiece tokenizer.
      max_decode_len: most generated tokens per example.
      batch_size: rows per compiled batch.
      max_prompt_len: longest accepted prompt, in tokens (BOS and "\\n" included).
      dtype: parameter/activation dtype: "auto" (bfloat16 on accelerators, float32 on CPU),
        "float32", "bfloat16" or "float16".
    """

    def __init__(self, params: dict, cfg: PaliGemmaConfig, tokenizer: PaliGemmaTokenizer, *,
                 max_decode_len: int = 64, batch_size: int = 8, max_prompt_len: int = 128,
                 dtype: str = "auto"):
        import jax
        import jax.numpy as jnp
        dtype = resolve_dtype(dtype)
        if tokenizer.vocab_size != cfg.text.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} pieces but the checkpoint's "
                             f"vocabulary is {cfg.text.vocab_size}: not a matching pair")
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.max_decode_len = max_decode_len
        self.batch_size = batch_size
        self.buckets = prompt_buckets(max_prompt_len)
        self.params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
        self._decode = functools.partial(
            model.decode_greedy_jit, cfg=cfg, max_decode_len=max_decode_len,
            eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id)
        self.compiled: set[tuple[int, int]] = set()

    @classmethod
    def load(cls, checkpoint_path: str, tokenizer_path: str, **kw) -> "PaliGemma":
        kw["dtype"] = resolve_dtype(kw.get("dtype", "auto"))
        params, cfg = hf.load_params(checkpoint_path, dtype=DTYPES[kw["dtype"]])  # npz or HF dir
        logging.info("PaliGemma: loaded %s (%s)", checkpoint_path, cfg)
        return cls(params, cfg, PaliGemmaTokenizer.from_file(tokenizer_path), **kw)

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    def prompt_tokens(self, prompt: str) -> list[int]:
        return self.tokenizer.encode_prefix(prompt)

    def check_prompt(self, prompt: str) -> str | None:
        n = len(self.prompt_tokens(prompt))
        if n > self.buckets[-1]:
            return f"prompt is {n} tokens, more than max_prompt_len={self.buckets[-1]}"
        return None

    def _prefix(self, prompts: list[str], rows: int):
        token_lists = [self.prompt_tokens(p) for p in prompts]
        longest = max(len(t) for t in token_lists)
        width = next(b for b in self.buckets if b >= longest)
        tokens = np.full((rows, width), self.tokenizer.pad_id, np.int32)
        mask = np.zeros((rows, width), bool)
        for i, t in enumerate(token_lists):  # right-aligned: see model.py
            tokens[i, width - len(t):] = t
            mask[i, width - len(t):] = True
        return tokens, mask

    def generate(self, images: list[np.ndarray], prompts: list[str]) -> list[Generation]:
        """Greedy answers for uint8 HxWx3 images and their prompts, in chunks of batch_size."""
        out: list[Generation] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self._generate_chunk(images[start:start + self.batch_size],
                                            prompts[start:start + self.batch_size]))
        return out

    def _generate_chunk(self, images, prompts) -> list[Generation]:
        import jax
        n, rows, r = len(images), self.batch_size, self.resolution
        pixels = np.zeros((rows, r, r, 3), np.float32)
        for i, image in enumerate(images):
            pixels[i] = preprocess(image, r)
        tokens, mask = self._prefix(prompts, rows)
        valid = np.arange(rows) < n
        self.compiled.add(tokens.shape)
        ids, logps = jax.device_get(self._decode(self.params, pixels, tokens, mask, valid))
        return [Generation(self.tokenizer.decode(ids[i]), tuple(int(t) for t in ids[i]),
                           tuple(float(x) for x in logps[i])) for i in range(n)]
