"""Throughput of `tessera label`: images/s through the Beam pipeline vs the same model in a plain loop.

Both sides label the same generated images (rendered text lines written as PNG files). The plain
loop gets them already decoded and calls the handler's `run_inference` batch by batch, with the
model loaded beforehand (the pure model cost). The pipeline side is the whole job, timed from
`build` to the COMPLETED marker: reading files, header probes, the size-bucket shuffle, decoding,
RunInference, Parquet writes, dead-letter and manifest stages, model loading and runner start-up.
The two sides alternate for `--repeats` rounds (the ratio is of the totals), so a shared machine's
varying load falls on both. Target: ratio >= 0.85.

Other families take the `tessera label` flags they need (`--prompt`, `--classes`,
`--max-decode-len`), given alike to the handler and to the pipeline's LabelConfig; `--image-size S`
writes SxS JPEGs (one size bucket, as photos resized for a model) instead of text-line PNGs, and
`--reuse-model` hands the pipeline the model the loop loaded and compiled (benchmarks/
preloaded_handler.py): per-image throughput, with the one-time load and compile reported beside it.

    python benchmarks/label.py [--images 100] [--repeats 2] [--model ocr] [--batch-size 8]
    python benchmarks/label.py --model paligemma:DIR --prompt 'caption en' --max-decode-len 16 \
        --image-size 224 --batch-size 64 --images 2048 --reuse-model --target 0.9
    python benchmarks/label.py --model siglip:DIR --classes 'cat,dog,car' --image-size 224 ...
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fixtures.text_lines import find_fonts, make_text, render_line  # noqa: E402


def write_images(directory: str, n: int) -> list[str]:
    fonts = find_fonts()
    paths = []
    for i in range(n):
        image = render_line(make_text(i), fonts[i % len(fonts)], 24, noise_sigma=6.0, seed_index=i)
        path = os.path.join(directory, f"img{i:05d}.png")
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def write_photos(directory: str, n: int, size: int, distinct: int = 256) -> list[str]:
    """`n` SxS JPEGs (a text line on a noisy canvas); `distinct` of them encoded, then copied."""
    import io

    import numpy as np
    fonts = find_fonts()
    encoded = []
    for i in range(min(n, distinct)):
        line = render_line(make_text(i), fonts[i % len(fonts)], 24, seed_index=i)[:size, :size]
        canvas = np.random.default_rng(i).normal(200, 25, (size, size, 3)).clip(0, 255)
        canvas[:line.shape[0], :line.shape[1]] = line
        buf = io.BytesIO()
        Image.fromarray(canvas.astype(np.uint8)).save(buf, format="JPEG", quality=90)
        encoded.append(buf.getvalue())
    paths = []
    for i in range(n):
        paths.append(os.path.join(directory, f"img{i:05d}.jpg"))
        with open(paths[-1], "wb") as f:
            f.write(encoded[i % len(encoded)])
    return paths


def plain_loop(handler, model, requests, batch_size: int) -> tuple[float, int]:
    start = time.perf_counter()
    done = 0
    for i in range(0, len(requests), batch_size):
        done += len(list(handler.run_inference(requests[i:i + batch_size], model)))
    return time.perf_counter() - start, done


def pipeline_run(config, runner: str = "DirectRunner") -> tuple[float, dict]:
    from apache_beam.options.pipeline_options import PipelineOptions

    from tessera.pipelines import common
    from tessera.pipelines import label
    start = time.perf_counter()
    counters = common.run_pipeline(label.build, config, PipelineOptions(["--runner", runner]))
    seconds = time.perf_counter() - start
    return seconds, counters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--model", default="ocr")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="alternating loop/pipeline rounds")
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--out", default="out/bench/label.json")
    parser.add_argument("--prompt", default="", help="as tessera label's (PaliGemma: 'caption en')")
    parser.add_argument("--classes", default="", help="siglip/lit: comma-separated class names")
    parser.add_argument("--max-decode-len", type=int, default=None, help="PaliGemma answer tokens")
    parser.add_argument("--image-size", type=int, default=0,
                        help="write SxS JPEGs instead of text-line PNGs (0: text lines)")
    parser.add_argument("--runner", default="DirectRunner",
                        help="FnApiRunner: what `tessera label` runs locally (DirectRunner may "
                             "first fetch and try Beam's Prism runner)")
    parser.add_argument("--reuse-model", action="store_true",
                        help="the pipeline runs the model the loop loaded (no reload/recompile)")
    args = parser.parse_args(argv)

    from tessera.models.registry import make_handler
    from tessera.pipelines import label as label_pipeline
    from tessera.pipelines.label import LabelConfig
    from tessera.schemas.labels import LabelRequest
    from tessera.transforms.label.decode import decode_image

    work = tempfile.mkdtemp(prefix="label_bench_")
    loop_s = pipe_s = 0.0
    loop_n = labelled = 0
    rounds = []
    try:
        os.makedirs(os.path.join(work, "in"))
        if args.image_size:
            paths = write_photos(os.path.join(work, "in"), args.images, args.image_size)
        else:
            paths = write_images(os.path.join(work, "in"), args.images)
        pattern = os.path.join(work, "in", "*" + os.path.splitext(paths[0])[1])
        requests = [LabelRequest(p, decode_image(open(p, "rb").read()), args.prompt) for p in paths]

        def config_for(output: str) -> LabelConfig:
            return LabelConfig(inputs=(pattern,), output=output, model=args.model,
                               batch_size=args.batch_size, bucket_shards=1, run_id="bench",
                               prompt=args.prompt, classes=args.classes,
                               max_decode_len=args.max_decode_len)
        # The handler options exactly as pipelines/label.py derives them from the config
        options = config_for(os.path.join(work, "unused"))
        handler = make_handler(args.model, batch_size=args.batch_size,
                               max_decode_len=options.max_decode_len, top_k=options.top_k,
                               class_names=options.class_names(), prompt=options.prompt)
        start = time.perf_counter()
        model = handler.load_model()
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        list(handler.run_inference(requests[:1], model))  # warm-up (first ONNX call, XLA compile)
        warmup_s = time.perf_counter() - start
        if args.reuse_model:
            from benchmarks import preloaded_handler
            preloaded_handler.MODELS["bench"] = model
            label_pipeline.make_handler = preloaded_handler.wrapping(make_handler, "bench")
        # Alternate the two sides so load from other processes hits both alike.
        for r in range(args.repeats):
            ls, ln = plain_loop(handler, model, requests, args.batch_size)
            config = config_for(os.path.join(work, f"out{r}"))
            ps, counters = pipeline_run(config, args.runner)
            pn = counters.get("label:labelled", 0)
            rounds.append({"loop_images_per_s": ln / ls, "pipeline_images_per_s": pn / ps,
                           "ratio": (pn / ps) / (ln / ls)})
            print(f"round {r}: loop {ln / ls:.3f} img/s, pipeline {pn / ps:.3f} img/s, "
                  f"ratio {rounds[-1]['ratio']:.3f}", flush=True)
            loop_s, loop_n, pipe_s, labelled = loop_s + ls, loop_n + ln, pipe_s + ps, labelled + pn
        shards = glob.glob(os.path.join(work, "out0", "labels", "*.parquet"))
    finally:
        label_pipeline.make_handler = make_handler
        shutil.rmtree(work, ignore_errors=True)
    loop_ips, pipe_ips = loop_n / loop_s, labelled / pipe_s
    report = {"model": args.model, "images": args.images, "batch_size": args.batch_size,
              "repeats": args.repeats, "rounds": rounds,
              "loop_seconds": loop_s, "pipeline_seconds": pipe_s, "loop_images_per_s": loop_ips,
              "pipeline_images_per_s": pipe_ips, "ratio": pipe_ips / loop_ips,
              "labelled": labelled, "label_shards": len(shards), "target": args.target,
              "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
              "prompt": args.prompt, "classes": args.classes,
              "max_decode_len": args.max_decode_len, "image_size": args.image_size,
              "reuse_model": args.reuse_model, "runner": args.runner, "load_seconds": load_s,
              "warmup_seconds": warmup_s, "device": _device()}
    if args.reuse_model:  # what one fresh worker labelling this many images would see
        report["pipeline_images_per_s_with_one_load"] = labelled / (
            pipe_s + args.repeats * (load_s + warmup_s))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    ok = labelled == args.images * args.repeats and report["ratio"] >= args.target
    print(f"label benchmark ({args.model}, {args.images} images x {args.repeats} rounds, "
          f"batch {args.batch_size}): "
          f"plain loop {loop_ips:.2f} img/s, pipeline {pipe_ips:.2f} img/s, "
          f"ratio {report['ratio']:.3f} (target >= {args.target}) {'PASS' if ok else 'FAIL'}")
    if args.reuse_model:
        print(f"  model loaded once ({load_s:.1f} s) and compiled once ({warmup_s:.1f} s) for both "
              f"sides; with one load + compile per round the pipeline would do "
              f"{report['pipeline_images_per_s_with_one_load']:.2f} img/s")
    return 0 if ok else 1


def _device() -> str:
    """The accelerator JAX ran on, if this run imported JAX (OCR does not)."""
    jax = sys.modules.get("jax")
    return jax.devices()[0].device_kind if jax else "cpu (onnxruntime)"


if __name__ == "__main__":
    sys.exit(main())
