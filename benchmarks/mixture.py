"""Mixture throughput against a plain Beam read-and-write, and the near-duplicate index vs brute force.

1. Writes three Parquet sources of tiny PNG records (32x32, random low-frequency textures) and
   times, on the same runner, (a) a plain pipeline that reads them and writes tf.train.Example
   TFRecords, and (b) `tessera mixture` on them with exact + near dedup, decontamination against
   100 eval images and fixed shards. Prints records/s for both and the ratio (target >= 0.5).
2. Times all-pairs near-duplicate search (d=8) over growing sets of pHashes: brute force (numpy,
   one row at a time), multi-index hashing vectorized over all queries (`mih_pairs`), and the
   pipeline's d+1 exact-chunk buckets (`bucket_keys` + `pairs_in_bucket`).

  python benchmarks/mixture.py                      # 200k records
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

from pipelines.mixture import MixtureRun, build
from schemas.mixture import MixtureRecord, mixture_config_from_dict
from transforms.mixture_io import example_bytes
from transforms.mixture_synth import write_parquet
from transforms.near_dup_index import brute_force_pairs, bucket_keys, mih_pairs, pairs_in_bucket

SOURCES = {"captions": 0.5, "ocr": 0.3, "vqa": 0.2}


def tiny_png(rng: np.random.Generator, size: int = 32) -> bytes:
    """A cheap distinct image: an upsampled random 12x12 colour field plus noise."""
    field = rng.uniform(0, 255, (12, 12, 3))
    image = Image.fromarray(field.astype(np.uint8), "RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-8, 9, (size, size, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def write_sources(root: str, records: int, files_per_source: int = 8) -> None:
    rng = np.random.default_rng(0)
    per_source = {name: int(records * w) for name, w in SOURCES.items()}
    for name, n in per_source.items():
        rows = [{"id": f"{name}{i}", "image": tiny_png(rng), "suffix": f"text {i}"} for i in range(n)]
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
    build(pipeline, MixtureRun(cfg, out))
    pipeline.run().wait_until_finish()


def timed(fn, *args) -> float:
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start


def bucket_pairs(hashes: list[int], d: int) -> int:
    buckets: dict = {}
    for i, h in enumerate(hashes):
        for key in bucket_keys(h, d):
            buckets.setdefault(key, []).append(i)
    return sum(len(pairs_in_bucket([hashes[k] for k in members], chunk, d))
               for (chunk, _), members in buckets.items())


def index_benchmark(sizes: list[int], d: int = 8) -> None:
    from transforms.image_hash import phash_bytes  # pylint: disable=import-outside-toplevel
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
        t0 = time.monotonic(); nb = bucket_pairs(hashes, d); t_b = time.monotonic() - t0
        assert sorted(mih) == sorted(brute) and nb == len(brute)
        print(f"{len(hashes):>8} {t_brute:9.2f} {t_mih:8.2f} {t_b:10.2f} {len(brute):>7}  "
              f"{t_brute / t_mih:8.2f}x {t_brute / t_b:10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--num-shards", type=int, default=16)
    parser.add_argument("--index-sizes", default="1000,4000,16000,64000,128000")
    parser.add_argument("--beam-options", default="", help="e.g. '--direct_num_workers 2'")
    parser.add_argument("--skip-pipelines", action="store_true")
    args = parser.parse_args()
    options = args.beam_options.split()
    if not args.skip_pipelines:
        root = tempfile.mkdtemp(prefix="mixbench_")
        try:
            t0 = time.monotonic()
            write_sources(root, args.records)
            print(f"wrote {args.records} records in {time.monotonic() - t0:.0f}s")
            t_plain = timed(plain_read_write, root, os.path.join(root, "plain"), args.num_shards, options)
            t_mix = timed(mixture, root, os.path.join(root, "mix"), args.num_shards, options)
            r_plain, r_mix = args.records / t_plain, args.records / t_mix
            print(f"plain read+write: {t_plain:7.1f}s {r_plain:9.0f} records/s")
            print(f"mixture:          {t_mix:7.1f}s {r_mix:9.0f} records/s")
            print(f"ratio mixture/plain = {r_mix / r_plain:.2f} (target >= 0.5)")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    index_benchmark([int(s) for s in args.index_sizes.split(",") if s])


if __name__ == "__main__":
    main()
