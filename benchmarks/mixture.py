"""Mixture throughput against a plain Beam read-and-write, and the near-duplicate index vs brute force.

1. Writes three Parquet sources of tiny image records (32x32 JPEG at quality 90 by default, as
   real pretraining corpora hold JPEGs; `--image-format png` for PNG) and times, on the same
   runner, (a) a plain pipeline that reads them and writes tf.train.Example TFRecords, and (b)
   `tessera mixture` on them with exact + near dedup (d=8), decontamination against 100 eval
   images (d=10) and 16 shards. Prints records/s for both and the ratio (target >= 0.5);
   `--repeats N` times both N times, interleaved, and reports the median of each.
2. Times all-pairs near-duplicate search (d=8) over growing sets of pHashes: brute force (numpy,
   one row at a time), multi-index hashing vectorized over all queries (`mih_pairs`), and the
   pipeline's d+1 exact-chunk buckets (`bucket_keys` + `mixture_dedup.bucket_pairs`).

  python benchmarks/mixture.py                      # 200k JPEG records
  python benchmarks/mixture.py --records 20000 --index-sizes 1000,4000   # quick
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from tessera.pipelines.common import LOCAL_RUNNER
from tessera.pipelines.mixture import build
from tessera.transforms.mixture.config import MixtureJobConfig
from tessera.schemas.mixture import MixtureRecord, mixture_config_from_dict
from tessera.transforms.mixture.records import example_bytes
from tests.fixtures.mixture_synth import write_parquet
from tessera.transforms.mixture.dedup_stages import bucket_pairs
from tessera.transforms.mixture.near_dup import brute_force_pairs, bucket_keys, mih_pairs

SOURCES = {"captions": 0.5, "ocr": 0.3, "vqa": 0.2}


def tiny_image(rng: np.random.Generator, size: int = 32, fmt: str = "PNG") -> bytes:
    """A cheap distinct image: an upsampled random 12x12 colour field plus noise."""
    field = rng.uniform(0, 255, (12, 12, 3))
    image = Image.fromarray(field.astype(np.uint8), "RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-8, 9, (size, size, 3))
    buf = io.BytesIO()
    options = {"quality": 90} if fmt == "JPEG" else {"compress_level": 1}
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, fmt, **options)
    return buf.getvalue()


def tiny_png(rng: np.random.Generator, size: int = 32) -> bytes:
    return tiny_image(rng, size, "PNG")


def write_sources(root: str, records: int, files_per_source: int = 8, fmt: str = "JPEG",
                  size: int = 32) -> None:
    rng = np.random.default_rng(0)
    per_source = {name: int(records * w) for name, w in SOURCES.items()}
    for name, n in per_source.items():
        rows = [{"id": f"{name}{i}", "image": tiny_image(rng, size, fmt), "suffix": f"text {i}"}
                for i in range(n)]
        step = -(-n // files_per_source)
        for f in range(files_per_source):
            write_parquet(os.path.join(root, name, f"part-{f:03d}.parquet"), rows[f * step:(f + 1) * step])
    os.makedirs(os.path.join(root, "eval"))
    for e in range(100):
        with open(os.path.join(root, "eval", f"e{e}.png"), "wb") as fh:
            fh.write(tiny_png(rng))


def _to_example(row: dict, source: str) -> bytes:
    return example_bytes(MixtureRecord(str(row["id"]), row["image"], "p", row["suffix"], source))


def plain_read_write(root: str, out: str, num_shards: int, options: list[str]) -> None:
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        rows = [p | f"Read[{n}]" >> beam.io.ReadFromParquet(f"{root}/{n}/*.parquet")
                | f"Encode[{n}]" >> beam.Map(_to_example, n) for n in SOURCES]
        _ = (rows | beam.Flatten()
             | beam.io.WriteToTFRecord(os.path.join(out, "plain"), num_shards=num_shards))


def mixture(root: str, out: str, num_shards: int, options: list[str]) -> None:
    cfg = mixture_config_from_dict({
        "name": "bench", "num_shards": num_shards,
        "sources": [{"name": n, "path": f"{root}/{n}/*.parquet", "format": "parquet", "weight": w,
                     "prefix": n} for n, w in SOURCES.items()],
        "dedup": {"exact": True, "near_image_hamming": 8},
        "decontaminate": {"eval": [f"{root}/eval/*.png"], "near_image_hamming": 10}})
    pipeline = beam.Pipeline(options=PipelineOptions(options))
    build(pipeline, MixtureJobConfig(cfg, out))
    pipeline.run().wait_until_finish()


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). The CPU time is what the pipeline itself cost
    on the in-process DirectRunner, whatever else the machine runs (it misses worker processes
    under `--direct_running_mode multi_processing`)."""
    start, cpu = time.monotonic(), time.process_time()
    fn(*args)
    return time.monotonic() - start, time.process_time() - cpu


def pipeline_bucket_pairs(hashes: list[int], d: int) -> int:
    """What the pipeline's near-dup GroupByKey does, in one process: d+1 exact-chunk buckets,
    then `bucket_pairs` (the triangle of each bucket's distance matrix) in each."""
    buckets: dict = {}
    for i, h in enumerate(hashes):
        for key in bucket_keys(h, d):
            buckets.setdefault(key, []).append(i)
    return sum(len(bucket_pairs(np.array([hashes[k] for k in members], dtype=np.uint64), chunk, d))
               for (chunk, _), members in buckets.items())


def index_benchmark(sizes: list[int], d: int = 8) -> None:
    from tessera.transforms.mixture.phash import phash_bytes  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(1)
    pool = [phash_bytes(tiny_png(rng)) for _ in range(min(max(sizes), 20_000))]
    print(f"\nall pairs within d={d} (pHashes of generated images, with planted near copies)")
    print(f"{'n':>8} {'brute s':>9} {'MIH s':>8} {'buckets s':>10} {'pairs':>7}  brute/MIH  brute/buckets")
    for n in sizes:
        base = [pool[i % len(pool)] ^ (int(rng.integers(0, 2 ** 32)) << 32 if i >= len(pool) else 0)
                for i in range(n)]
        hashes = base + [h ^ (1 << int(rng.integers(0, 64))) for h in base[: n // 10]]
        t0 = time.monotonic(); brute = brute_force_pairs(hashes, d); t_brute = time.monotonic() - t0
        t0 = time.monotonic(); mih = mih_pairs(hashes, d); t_mih = time.monotonic() - t0
        t0 = time.monotonic(); nb = pipeline_bucket_pairs(hashes, d); t_b = time.monotonic() - t0
        assert sorted(mih) == sorted(brute) and nb == len(brute)
        print(f"{len(hashes):>8} {t_brute:9.2f} {t_mih:8.2f} {t_b:10.2f} {len(brute):>7}  "
              f"{t_brute / t_mih:8.2f}x {t_brute / t_b:10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--num-shards", type=int, default=16)
    parser.add_argument("--index-sizes", default="1000,4000,16000,64000,128000")
    parser.add_argument("--beam-options", default="",
                        help="e.g. '--direct_num_workers 2'; the runner defaults to Tessera's local one")
    parser.add_argument("--image-format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of each pipeline")
    parser.add_argument("--skip-pipelines", action="store_true")
    args = parser.parse_args()
    options = args.beam_options.split()
    if not any(o.startswith("--runner") for o in options):  # both pipelines on what `tessera` uses locally
        options += ["--runner", LOCAL_RUNNER]
    if not args.skip_pipelines:
        root = tempfile.mkdtemp(prefix="mixbench_")
        try:
            t0 = time.monotonic()
            write_sources(root, args.records, fmt=args.image_format.upper())
            print(f"wrote {args.records} 32x32 {args.image_format.upper()} records in {time.monotonic() - t0:.0f}s")
            plain_s, mix_s = [], []
            for r in range(args.repeats):
                plain_s.append(timed(plain_read_write, root, os.path.join(root, f"plain{r}"), args.num_shards, options))
                mix_s.append(timed(mixture, root, os.path.join(root, f"mix{r}"), args.num_shards, options))
                print(f"  run {r + 1}: plain {plain_s[-1][0]:.1f}s (cpu {plain_s[-1][1]:.1f}s), mixture "
                      f"{mix_s[-1][0]:.1f}s (cpu {mix_s[-1][1]:.1f}s)")
            (t_plain, c_plain), (t_mix, c_mix) = np.median(plain_s, axis=0), np.median(mix_s, axis=0)
            r_plain, r_mix = args.records / t_plain, args.records / t_mix
            print(f"plain read+write: {t_plain:7.1f}s {r_plain:9.0f} records/s  (cpu {c_plain:.1f}s)")
            print(f"mixture:          {t_mix:7.1f}s {r_mix:9.0f} records/s  (cpu {c_mix:.1f}s)")
            print(f"ratio mixture/plain = {r_mix / r_plain:.2f} (target >= 0.5); by CPU time {c_plain / c_mix:.2f}")
            run_ratios = [p[0] / m[0] for p, m in zip(plain_s, mix_s)]
            print("per-run ratios (each mixture run against the plain run just before it): "
                  + ", ".join(f"{r:.2f}" for r in run_ratios) + f"; median {np.median(run_ratios):.2f}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    sizes = [int(s) for s in args.index_sizes.split(",") if s]
    if sizes:
        index_benchmark(sizes)


if __name__ == "__main__":
    main()
