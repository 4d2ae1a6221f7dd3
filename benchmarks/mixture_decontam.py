"""Decontamination benchmark: do perturbed evaluation images get caught, and distinct ones kept?

Generates DISTINCT images that are not evaluation images and EVAL images, and puts every eval
image back into the "training" pool once per perturbation (resized 0.5-2x, JPEG quality 10-25,
0-4% cropped off each side, brightened 5-25%). Each pool image is matched against the eval set the
way the pipeline's `PrepareFn` does it (the pipeline's pHash, `transforms.mixture_hash`, and
MultiIndexHash, distance <= d). Prints the share of
reappearances removed (target >= 99%) and of distinct images removed (target < 0.1%), per
perturbation and for several d, and writes a histogram PNG.

  python benchmarks/mixture_decontam.py                          # 20k distinct, 1k eval, d=10
  python benchmarks/mixture_decontam.py --distinct 2000 --eval 200   # quick
  python benchmarks/mixture_decontam.py --pipeline                # same check through Beam
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from tessera.transforms.mixture.phash import phash_bytes, phash_pil
from tests.fixtures.mixture_synth import PERTURBATIONS, distinct_image, encode, perturb
from tessera.transforms.mixture.near_dup import MultiIndexHash

EVAL_SEED_BASE = 10_000_000  # eval images and distinct images never share a seed


def nearest_distances(queries: np.ndarray, eval_hashes: np.ndarray) -> np.ndarray:
    """Distance from each query to its nearest eval hash (blockwise brute force, for the plot)."""
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 2048):
        block = queries[start:start + 2048]
        out[start:start + 2048] = np.bitwise_count(block[:, None] ^ eval_hashes[None, :]).min(axis=1)
    return out


def run_pipeline_check(distinct_png, reappear, eval_images, d: int) -> dict:
    """Writes the pool as a JSONL source and the eval set as PNG files, runs the real pipeline."""
    from apache_beam.testing.test_pipeline import TestPipeline  # pylint: disable=import-outside-toplevel

    from tessera.pipelines.mixture import build  # pylint: disable=import-outside-toplevel
    from tessera.transforms.mixture.config import MixtureJobConfig  # pylint: disable=import-outside-toplevel
    from tessera.schemas.mixture import mixture_config_from_dict  # pylint: disable=import-outside-toplevel
    from tests.fixtures.mixture_synth import write_jsonl  # pylint: disable=import-outside-toplevel
    root = tempfile.mkdtemp(prefix="decontam_")
    rows = [{"id": f"d{i}", "image": b, "suffix": "x"} for i, b in enumerate(distinct_png)]
    rows += [{"id": f"r{e}_{k}", "image": b, "suffix": "x"} for e, k, b in reappear]
    write_jsonl(os.path.join(root, "pool", "pool.jsonl"), rows)
    os.makedirs(os.path.join(root, "eval"))
    for e, image in enumerate(eval_images):
        image.save(os.path.join(root, "eval", f"eval{e:06d}.png"))
    cfg = mixture_config_from_dict({
        "name": "decontam_bench", "num_shards": 1, "dedup": {"exact": False},
        "sources": [{"name": "pool", "path": f"{root}/pool/*.jsonl", "format": "jsonl", "weight": 1.0,
                     "prefix": "p"}],
        "decontaminate": {"eval": [f"{root}/eval/*.png"], "near_image_hamming": d}})
    pipeline = TestPipeline()
    build(pipeline, MixtureJobConfig(cfg, os.path.join(root, "out")))
    pipeline.run().wait_until_finish()
    removed = set()
    rejected_dir = os.path.join(root, "out", "rejected")
    for name in os.listdir(rejected_dir):
        with open(os.path.join(rejected_dir, name)) as f:
            removed |= {json.loads(line)["key"].split("/", 1)[1] for line in f
                        if json.loads(line)["reason"] == "contaminated"}
    return {"reappear_removed": sum(1 for e, k, _ in reappear if f"r{e}_{k}" in removed),
            "distinct_removed": sum(1 for i in range(len(distinct_png)) if f"d{i}" in removed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distinct", type=int, default=20_000)
    parser.add_argument("--eval", type=int, default=1_000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--d", type=int, default=10, help="the decontamination Hamming distance")
    parser.add_argument("--pipeline", action="store_true", help="also run the Beam pipeline on the pool")
    parser.add_argument("--png", default="benchmarks/results/mixture_decontam.png")
    args = parser.parse_args()

    start = time.monotonic()
    eval_images = [distinct_image(EVAL_SEED_BASE + e, args.size) for e in range(args.eval)]
    eval_hashes = np.array([phash_pil(im) for im in eval_images], dtype=np.uint64)  # as PNG files
    reappear = [(e, kind, perturb(im, kind, seed=e)) for e, im in enumerate(eval_images) for kind in PERTURBATIONS]
    reappear_hashes = np.array([phash_bytes(b) for _, _, b in reappear], dtype=np.uint64)
    distinct_png = [encode(distinct_image(i, args.size)) for i in range(args.distinct)]
    distinct_hashes = np.array([phash_bytes(b) for b in distinct_png], dtype=np.uint64)
    gen_s = time.monotonic() - start

    start = time.monotonic()
    index = MultiIndexHash(eval_hashes.tolist(), args.d)
    hit_reappear = np.array([index.nearest(int(h)) is not None for h in reappear_hashes])
    hit_distinct = np.array([index.nearest(int(h)) is not None for h in distinct_hashes])
    match_s = time.monotonic() - start
    # the index must agree with brute force (it is exact), checked here on the real data
    near_r = nearest_distances(reappear_hashes, eval_hashes)
    near_d = nearest_distances(distinct_hashes, eval_hashes)
    assert (hit_reappear == (near_r <= args.d)).all() and (hit_distinct == (near_d <= args.d)).all()

    kinds = np.array([k for _, k, _ in reappear])
    print(f"distinct={args.distinct} eval={args.eval} reappearances={len(reappear)} size={args.size}px "
          f"d={args.d} (generate+hash {gen_s:.0f}s, match {match_s:.1f}s, m={index.m} chunks)")
    for kind in PERTURBATIONS:
        sel = kinds == kind
        print(f"  {kind:9s} removed {hit_reappear[sel].sum()}/{sel.sum()} = {hit_reappear[sel].mean():.2%}")
    recall, false_rate = hit_reappear.mean(), hit_distinct.mean()
    print(f"reappearances removed: {hit_reappear.sum()}/{len(reappear)} = {recall:.2%} (target >= 99%)")
    print(f"distinct removed:      {hit_distinct.sum()}/{args.distinct} = {false_rate:.3%} (target < 0.1%)")
    for d in (6, 8, 10, 12, 14):
        print(f"  d={d:2d}: reappearances removed {(near_r <= d).mean():.2%}, distinct removed {(near_d <= d).mean():.3%}")
    print("PASS" if recall >= 0.99 and false_rate < 0.001 else "FAIL")

    if args.pipeline:
        start = time.monotonic()
        got = run_pipeline_check(distinct_png, reappear, eval_images, args.d)
        print(f"pipeline ({time.monotonic() - start:.0f}s): reappearances removed {got['reappear_removed']}/"
              f"{len(reappear)}, distinct removed {got['distinct_removed']}/{args.distinct}; same as above: "
              f"{got['reappear_removed'] == hit_reappear.sum() and got['distinct_removed'] == hit_distinct.sum()}")

    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.dirname(args.png) or ".", exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.arange(0, 40, 2) - 1
    ax.hist(near_d, bins=bins, alpha=0.6, label=f"distinct images (n={args.distinct})", density=True)
    ax.hist(near_r, bins=bins, alpha=0.6, label=f"perturbed eval copies (n={len(reappear)})", density=True)
    ax.axvline(args.d + 0.5, color="k", linestyle="--", label=f"threshold d={args.d}")
    ax.set_yscale("log")
    ax.set_xlabel("pHash distance to the nearest eval image (bits of 64)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
