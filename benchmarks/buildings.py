"""km^2/s of the buildings pipeline (DirectRunner) vs the U-Net's plain jitted forward pass.

One run renders a synthetic 0.5 m scene (transforms.synth_scene), writes it as a UTM GeoTIFF, then:
  * baseline: the windows the pipeline plans (same tile size and overlap, hence the same pixels) are
    read into memory first; a fresh `jax.jit` of the model's apply_fn then runs over them in batches
    of --batch-size; the timed part includes the one compile and every forward pass.
  * pipeline: `pipelines.buildings.build` on the DirectRunner end to end (match, inspect, plan, read,
    RunInference, polygonize, geo fields, GeoParquet, manifest), wall clock.
Both are reported as scene km^2 per second; ratio = pipeline / baseline (target >= 0.7 on CPU), from
the medians of --repeats alternating runs (each adjacent pair's ratio is listed too: on a shared
machine the load moves). The share of pipeline time outside the model uses RunInference's own
batch-latency metric, so it does not depend on the load during the baseline. A second
baseline over the scene cut into non-overlapping tiles shows what the overlap itself costs.

    python benchmarks/buildings.py [--size 2048 --tile-size 512 --overlap 128 --seed 4242 --repeats 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def write_scene(path: str, seed: int, size: int) -> float:
    """Render and write the scene; returns its area in km^2."""
    import rasterio
    from rasterio.transform import from_origin

    from tessera.training.buildings.scenes import GSD_M, render_scene
    image = render_scene(seed, size).image  # [H, W, 3] uint8
    # Origin on a multiple of 192 m = 384 px (the default window stride), as a tile of a large
    # aligned mosaic would be; otherwise the scene's edges would need an extra row/column of windows.
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32636",
                   transform=from_origin(192.0 * 1563, 192.0 * 51303, GSD_M, GSD_M), tiled=True,
                   blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    return (size * GSD_M) ** 2 / 1e6


def planned_windows(path: str, tile: int, overlap: int) -> list[np.ndarray]:
    from tessera.transforms.buildings import grid as buildings_grid
    from tessera.transforms.buildings import raster as buildings_raster
    info = buildings_raster.inspect_raster(path)
    specs = [buildings_grid.assemble_window(k, [v], tile, overlap) for k, v in buildings_grid.plan_windows(info, tile, overlap)]
    cache = buildings_raster.DatasetCache()
    return [buildings_raster.read_window(s, cache)[0] for s in specs if s is not None]


def plain_tiles(path: str, tile: int) -> list[np.ndarray]:
    """The scene cut into ceil(H / tile) * ceil(W / tile) non-overlapping tiles (edges zero-padded)."""
    import rasterio
    with rasterio.open(path) as ds:
        image = np.moveaxis(ds.read(), 0, -1).astype(np.float32) / 255.0
    h, w, _ = image.shape
    padded = np.zeros((-(-h // tile) * tile, -(-w // tile) * tile, 3), np.float32)
    padded[:h, :w] = image
    return [padded[r:r + tile, c:c + tile] for r in range(0, h, tile) for c in range(0, w, tile)]


def plain_forward(model_path: str, windows: list[np.ndarray], batch: int) -> float:
    import jax

    from tessera.models import unet
    model = unet.load(model_path)
    apply = jax.jit(model.apply_fn)
    params = jax.device_put(model.params)
    start = time.perf_counter()
    for i in range(0, len(windows), batch):
        jax.device_get(apply(params, np.stack(windows[i:i + batch])))
    return time.perf_counter() - start


def pipeline_run(input_glob: str, out: str, model_path: str, tile: int, overlap: int, batch: int):
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    from tessera.pipelines.buildings import BuildingsConfig, build
    from tessera.pipelines.common import counters
    config = BuildingsConfig(input=input_glob, output=out, model=model_path, tile_size=tile,
                             overlap=overlap, batch_size=batch)
    start = time.perf_counter()
    p = beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"]))
    build(p, config)
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - start
    model_us = 0
    for d in result.metrics().query(MetricsFilter())["distributions"]:
        if d.key.metric.name.endswith("inference_batch_latency_micro_secs"):
            model_us += (d.committed or d.attempted).sum
    return wall, model_us / 1e6, counters(result)


def main(argv=None) -> int:
    from tessera.pipelines.buildings import DEFAULT_MODEL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="Scene side in pixels (0.5 m).")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="Alternating runs of each side; medians.")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default="out/bench/buildings.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        scene = os.path.join(tmp, "scene.tif")
        km2 = write_scene(scene, args.seed, args.size)
        windows = planned_windows(scene, args.tile_size, args.overlap)
        tiles_no_overlap = plain_tiles(scene, args.tile_size)
        base0_s = plain_forward(args.model, tiles_no_overlap, args.batch_size)
        bases, runs = [], []
        for r in range(args.repeats):  # alternate, so load changes on a shared machine hit both sides
            bases.append(plain_forward(args.model, windows, args.batch_size))
            runs.append(pipeline_run(scene, os.path.join(tmp, f"out{r}"), args.model, args.tile_size,
                                     args.overlap, args.batch_size))
        base_s = statistics.median(bases)
        wall = statistics.median(r[0] for r in runs)
        model_s = statistics.median(r[1] for r in runs)
        shares = [1.0 - r[1] / r[0] for r in runs if r[1]]
        counts = runs[-1][2]
    report = {
        "scene_km2": km2, "scene_px": args.size, "tile_size": args.tile_size, "overlap": args.overlap,
        "batch_size": args.batch_size, "windows": len(windows), "repeats": args.repeats,
        "baseline_runs_s": [round(b, 2) for b in bases], "pipeline_runs_s": [round(r[0], 2) for r in runs],
        "baseline_forward_s": round(base_s, 2), "baseline_km2_per_s": km2 / base_s,
        "pipeline_wall_s": round(wall, 2), "pipeline_km2_per_s": km2 / wall,
        "ratio_pipeline_vs_forward": (km2 / wall) / (km2 / base_s),
        "model_time_in_pipeline_s": round(model_s, 2),
        "share_outside_model": statistics.median(shares) if shares else None,
        "pair_ratios": [round(b / r[0], 3) for b, r in zip(bases, runs)],
        "no_overlap_windows": len(tiles_no_overlap), "no_overlap_forward_s": round(base0_s, 2),
        "ratio_pipeline_vs_forward_without_overlap": base0_s / wall,
        "buildings": counts.get("buildings:buildings_written", 0),
        "cpu": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"ratio (pipeline / plain forward, same pixels): {report['ratio_pipeline_vs_forward']:.3f} "
          f"(target >= 0.7); share of time outside the model: "
          f"{report['share_outside_model'] if report['share_outside_model'] is None else round(report['share_outside_model'], 3)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
