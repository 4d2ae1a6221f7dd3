"""PaliGemma greedy-decoding throughput, with random weights (real ones are never downloaded).

Measures, in one run, images/s of KV-cache decoding at a few batch sizes and, for the tiny config,
the speed-up of the KV cache over re-running the whole prefix-LM for every token. Random weights
never emit EOS, so every image decodes `--max-decode-len` tokens: a worst case for captions.

  # CPU, tiny config (seconds):
  python benchmarks/paligemma_decode.py --config tiny
  # GPU, the real 3B architecture at 224 px in bfloat16 (needs ~6 GB of accelerator memory):
  python benchmarks/paligemma_decode.py --config 3b --resolution 224 --dtype bfloat16 \
      --batch-sizes 8,32 --max-decode-len 32
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from tessera.models.paligemma import checkpoint  # noqa: E402
from tessera.models.paligemma import configs
from tessera.models.paligemma import model


def random_params(cfg, dtype, seed=0):
    """Random parameters made on the device, shaped like a real checkpoint (fast for 3B)."""
    key = jax.random.PRNGKey(seed)
    flat = {}
    for i, (name, shape) in enumerate(sorted(checkpoint.param_shapes(cfg).items())):
        fan_in = shape[-2] if len(shape) >= 2 else 1
        scale = 0.02 if name.endswith(("bias", "scale", "pos_embedding")) else fan_in ** -0.5
        flat[name] = (jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32)
                      * scale).astype(dtype)
    return checkpoint.unflatten(flat)


def inputs(cfg, batch, prompt_len=16, seed=0):
    rng = np.random.default_rng(seed)
    r = cfg.resolution
    images = rng.uniform(-1, 1, (batch, r, r, 3)).astype(np.float32)
    tokens = rng.integers(3, cfg.text.vocab_size, (batch, prompt_len)).astype(np.int32)
    mask = np.zeros((batch, prompt_len), bool)
    mask[:, -6:] = True  # "caption en" is ~5 tokens with BOS and "\n"
    return images, tokens, mask, np.ones(batch, bool)


def timed(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("tiny", "3b"), default="tiny")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--max-decode-len", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compare-nocache", action="store_true",
                        help="also time the cache-free reference decoder (default for tiny)")
    args = parser.parse_args(argv)

    cfg = configs.tiny_config(image_size=56) if args.config == "tiny" else configs.paligemma_3b(
        args.resolution)
    params = random_params(cfg, jnp.dtype(args.dtype))
    n_params = sum(int(np.prod(s)) for s in checkpoint.param_shapes(cfg).values())
    device = jax.devices()[0]
    print(json.dumps({"config": args.config, "resolution": cfg.resolution, "dtype": args.dtype,
                      "params": n_params, "device": device.device_kind}), flush=True)
    m = args.max_decode_len
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        images, tokens, mask, valid = inputs(cfg, batch)

        def run():
            return model.decode_greedy_jit(params, images, tokens, mask, valid, cfg=cfg,
                                           max_decode_len=m, eos_id=-1, pad_id=0)
        t = time.perf_counter()
        jax.block_until_ready(run())
        compile_s = time.perf_counter() - t
        step = timed(run, args.reps)
        row = {"batch": batch, "max_decode_len": m, "compile_s": round(compile_s, 2),
               "batch_s": round(step, 4), "images_per_s": round(batch / step, 2),
               "tokens_per_s": round(batch * m / step, 1)}
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            row["peak_gib"] = round(stats["peak_bytes_in_use"] / 2**30, 2)
        if args.compare_nocache or args.config == "tiny":
            def run_ref():
                return model.decode_greedy_nocache(params, images, tokens, mask, valid, cfg=cfg,
                                                   max_decode_len=m, eos_id=-1)
            run_ref()  # compile
            ref = timed(run_ref, args.reps)
            row["nocache_batch_s"] = round(ref, 4)
            row["kv_cache_speedup"] = round(ref / step, 2)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
