"""`make demo`: the Open Buildings job end to end on a bundled sample scene, on this machine.

    python -m tessera.pipelines.demo --output out/demo      (what `make demo` runs; a few minutes on CPU)

1. Renders the sample scene deterministically (synth-scene, seed 9001: never used in training; the
   shipped model saw seeds 0-319 labelled, 100000-100159 unlabelled and 90000-90007 for validation,
   see models/weights/unet_buildings.md) -> OUTPUT/scene/scene.tif + buildings.geojson.
2. Runs `tessera buildings` with the shipped U-Net on the DirectRunner -> OUTPUT/buildings/ (GeoParquet
   partitioned by S2 cell, dead letters, manifest, COMPLETED).
3. Runs `tessera buildings-eval` against the true footprints -> OUTPUT/eval/ (JSON scores, PNG overlay).
4. The same on a real 0.5 m panchromatic SpaceNet tile of Rotterdam bundled with the tests
   (tests/data/real/rotterdam_pan1.tif), scored against its hand-digitized dev labels and
   building-free regions -> OUTPUT/real/.
Then prints where everything is and the scores.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import shutil
import sys

DEMO_SEED = 9001
DEMO_SIZE = 1024  # pixels at 0.5 m: 512 m x 512 m


def _run_step(name: str, main, argv: list[str]) -> None:
    logging.info("demo: %s %s", name, " ".join(argv))
    code = main(argv)
    if code:
        raise SystemExit(f"demo: step {name!r} failed with exit code {code}")


def main(argv: list[str] | None = None) -> int:
    from tessera.pipelines import buildings
    from tessera.pipelines import buildings_eval
    from tessera.pipelines import synth_scene
    from tessera.pipelines.common import setup_logging

    setup_logging()
    parser = argparse.ArgumentParser(prog="python -m tessera.pipelines.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="out/demo")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--size", type=int, default=DEMO_SIZE)
    parser.add_argument("--model", default=buildings.DEFAULT_MODEL)
    args = parser.parse_args(argv)

    out = os.path.abspath(args.output)
    scene_dir, pred_dir, eval_dir = (os.path.join(out, d) for d in ("scene", "buildings", "eval"))
    for d in (pred_dir, eval_dir):  # a rerun replaces the previous results, never mixes with them
        shutil.rmtree(d, ignore_errors=True)

    _run_step("synth-scene", synth_scene.main,
              ["--output", scene_dir, "--seed", str(args.seed), "--size", str(args.size)])
    scene, labels = os.path.join(scene_dir, "scene.tif"), os.path.join(scene_dir, "buildings.geojson")
    _run_step("buildings", buildings.main,
              ["--input", scene, "--output", pred_dir, "--model", args.model,
               "--direct_num_workers", "1", "--direct_running_mode", "in_memory"])
    _run_step("buildings-eval", buildings_eval.main,
              ["--predictions", pred_dir, "--labels", labels, "--image", scene,
               "--output-json", os.path.join(eval_dir, "eval.json"), "--png", os.path.join(eval_dir, "overlay.png")])

    scores_files = sorted(glob.glob(os.path.join(eval_dir, "*.json")))
    with open(scores_files[0]) as f:
        scores = json.load(f)
    parquet = sorted(glob.glob(os.path.join(pred_dir, "buildings", "*", "*.parquet")))
    pngs = sorted(glob.glob(os.path.join(eval_dir, "*.png")))
    with open(os.path.join(pred_dir, "manifest.json")) as f:
        manifest = json.load(f)
    print("\nTessera demo: Open Buildings on a synthetic 0.5 m scene "
          f"(seed {args.seed}, {args.size}x{args.size} px)")
    print(f"  scene:        {scene}")
    print(f"  true labels:  {labels}")
    print(f"  buildings:    {len(parquet)} GeoParquet file(s) under {os.path.join(pred_dir, 'buildings')}"
          f" ({manifest['counts'].get('buildings', 0)} buildings)")
    print(f"  manifest:     {os.path.join(pred_dir, 'manifest.json')}")
    for path in scores_files:
        print(f"  eval JSON:    {path}")
    for path in pngs:
        print(f"  overlay PNG:  {path}")
    if scores:
        shown = {k: scores[k] for k in ("ap50", "precision", "recall", "f1") if k in scores}
        print("  scores:       " + json.dumps(shown or scores))
    real = _real_tile(os.path.join(out, "real"), args.model, buildings, buildings_eval)
    if real:
        print("\nTessera demo: Open Buildings on a real 0.5 m panchromatic tile (SpaceNet, Rotterdam)")
        print(f"  tile:         {REAL_TILE}")
        print(f"  overlay PNG:  {os.path.join(out, 'real', 'overlay.png')}")
        shown = {k: round(real[k], 3) for k in ("precision", "recall", "f1")}
        shown["false buildings in building-free regions"] = real["free_regions"]["false_buildings"]
        print("  scores:       " + json.dumps(shown))
    return 0


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_TILE = os.path.join(REPO, "tests", "data", "real", "rotterdam_pan1.tif")
REAL_LABELS = os.path.join(REPO, "training", "buildings", "dev_labels", "rotterdam_pan1")


def _real_tile(out: str, model: str, buildings, buildings_eval) -> dict | None:
    """Run and score the bundled real tile (a source checkout has it; an installed package not)."""
    if not os.path.exists(REAL_TILE):
        return None
    shutil.rmtree(out, ignore_errors=True)
    _run_step("buildings (real tile)", buildings.main,
              ["--input", REAL_TILE, "--output", os.path.join(out, "buildings"), "--model", model,
               "--direct_num_workers", "1", "--direct_running_mode", "in_memory"])
    scores = os.path.join(out, "eval.json")
    _run_step("buildings-eval (real tile)", buildings_eval.main,
              ["--predictions", os.path.join(out, "buildings"), "--labels", REAL_LABELS + ".geojson",
               "--free-regions", REAL_LABELS + ".free.geojson", "--image", REAL_TILE,
               "--output-json", scores, "--png", os.path.join(out, "overlay.png")])
    with open(scores) as f:
        return json.load(f)


if __name__ == "__main__":
    sys.exit(main())
