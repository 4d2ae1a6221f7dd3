"""Throughput of `tessera label`: images/s through the Beam pipeline vs the same model in a plain loop.

Both sides label the same generated images (rendered text lines written as PNG files). The plain
loop gets them already decoded and calls the handler's `run_inference` batch by batch, with the
model loaded beforehand (the pure model cost). The pipeline side is the whole job, timed from
`build` to the COMPLETED marker: reading files, header probes, the size-bucket shuffle, decoding,
RunInference, Parquet writes, dead-letter and manifest stages, model loading and runner start-up.
The two sides alternate for `--repeats` rounds (the ratio is of the totals), so a shared machine's
varying load falls on both. Target: ratio >= 0.85.

    python benchmarks/label.py [--images 100] [--repeats 2] [--model ocr] [--batch-size 8]
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

from benchmarks.ocr_quality import find_fonts, make_text, render_line  # noqa: E402


def write_images(directory: str, n: int) -> list[str]:
    fonts = find_fonts()
    paths = []
    for i in range(n):
        image = render_line(make_text(i), fonts[i % len(fonts)], 24, noise_sigma=6.0, seed_index=i)
        path = os.path.join(directory, f"img{i:05d}.png")
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def plain_loop(handler, model, requests, batch_size: int) -> tuple[float, int]:
    start = time.perf_counter()
    done = 0
    for i in range(0, len(requests), batch_size):
        done += len(list(handler.run_inference(requests[i:i + batch_size], model)))
    return time.perf_counter() - start, done


def pipeline_run(config) -> tuple[float, dict]:
    from apache_beam.options.pipeline_options import PipelineOptions

    from tessera.pipelines import common
    from tessera.pipelines import label
    start = time.perf_counter()
    counters = common.run_pipeline(label.build, config, PipelineOptions(["--runner", "DirectRunner"]))
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
    args = parser.parse_args(argv)

    from tessera.models.registry import make_handler
    from tessera.pipelines.label import LabelConfig
    from tessera.schemas.labels import LabelRequest
    from tessera.transforms.label.decode import decode_image

    work = tempfile.mkdtemp(prefix="label_bench_")
    loop_s = pipe_s = 0.0
    loop_n = labelled = 0
    rounds = []
    try:
        os.makedirs(os.path.join(work, "in"))
        paths = write_images(os.path.join(work, "in"), args.images)
        requests = [LabelRequest(p, decode_image(open(p, "rb").read())) for p in paths]
        handler = make_handler(args.model, batch_size=args.batch_size)
        model = handler.load_model()
        handler.run_inference(requests[:1], model)  # warm-up (first ONNX/XLA call)
        # Alternate the two sides so load from other processes hits both alike.
        for r in range(args.repeats):
            ls, ln = plain_loop(handler, model, requests, args.batch_size)
            config = LabelConfig(inputs=(os.path.join(work, "in", "*.png"),),
                                 output=os.path.join(work, f"out{r}"), model=args.model,
                                 batch_size=args.batch_size, bucket_shards=1, run_id="bench")
            ps, counters = pipeline_run(config)
            pn = counters.get("label:labelled", 0)
            rounds.append({"loop_images_per_s": ln / ls, "pipeline_images_per_s": pn / ps,
                           "ratio": (pn / ps) / (ln / ls)})
            print(f"round {r}: loop {ln / ls:.3f} img/s, pipeline {pn / ps:.3f} img/s, "
                  f"ratio {rounds[-1]['ratio']:.3f}", flush=True)
            loop_s, loop_n, pipe_s, labelled = loop_s + ls, loop_n + ln, pipe_s + ps, labelled + pn
        shards = glob.glob(os.path.join(work, "out0", "labels", "*.parquet"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loop_ips, pipe_ips = loop_n / loop_s, labelled / pipe_s
    report = {"model": args.model, "images": args.images, "batch_size": args.batch_size,
              "repeats": args.repeats, "rounds": rounds,
              "loop_seconds": loop_s, "pipeline_seconds": pipe_s, "loop_images_per_s": loop_ips,
              "pipeline_images_per_s": pipe_ips, "ratio": pipe_ips / loop_ips,
              "labelled": labelled, "label_shards": len(shards), "target": args.target,
              "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    ok = labelled == args.images * args.repeats and report["ratio"] >= args.target
    print(f"label benchmark ({args.model}, {args.images} images x {args.repeats} rounds, "
          f"batch {args.batch_size}): "
          f"plain loop {loop_ips:.2f} img/s, pipeline {pipe_ips:.2f} img/s, "
          f"ratio {report['ratio']:.3f} (target >= {args.target}) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
