"""Instance quality of the shipped U-Net on synthetic scenes from seeds never used in training.

Target (issue 3): F1 at IoU 0.5 >= 0.85 and AP50 >= 0.80.

Two modes:
  direct    (default) the model on each whole scene, then the pipeline's own polygonization
            (`transforms.polygons.window_instances`) and `transforms.building_metrics`, in pixels.
  pipeline  the real thing, end to end: `tessera synth-scene` -> `tessera buildings` (DirectRunner)
            -> `tessera buildings-eval` on each scene (slower: geo I/O, GeoParquet, reprojection).

  python benchmarks/buildings_quality.py                       # seeds 5000..5009, direct
  python benchmarks/buildings_quality.py --mode pipeline --seeds 5000:5004
Training used seeds 0..319 (labelled), 100000..100159 (unlabelled) and 90000..90007 (validation).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tessera.models import unet  # noqa: E402
from tessera.transforms.buildings import metrics as buildings_metrics  # noqa: E402
from tessera.training.buildings.scenes import render_scene  # noqa: E402

TRAINING_SEEDS = [range(0, 320), range(100000, 100160), range(90000, 90008)]
DEFAULT_MODEL = os.path.join(ROOT, "models", "weights", "unet_buildings.msgpack")


def _seeds(text: str) -> list[int]:
    if ":" in text:
        a, b = text.split(":")
        return list(range(int(a), int(b)))
    return [int(s) for s in text.split(",")]


def direct(seeds, size, model_path, threshold, core_threshold, min_confidence):
    import jax

    from tessera.transforms.buildings.polygons import window_instances

    jm = unet.load(model_path)
    fn = jax.jit(jm.apply_fn)
    per_scene, preds, confs, labels = [], [], [], []
    for seed in seeds:
        scene = render_scene(seed, size)
        x = scene.image[None].astype(np.float32) / 255.0
        t0 = time.time()
        prob = np.asarray(fn(jm.params, x))[0]
        model_s = time.time() - t0
        found = window_instances(prob, None, transform=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                                 core=(0, 0, size, size), threshold=threshold, core_threshold=core_threshold,
                                 min_confidence=min_confidence)
        p = [f["geometry"] for f in found]
        c = [f["confidence"] for f in found]
        gt = scene.polygons()
        m = buildings_metrics.evaluate(p, c, gt)
        per_scene.append({"seed": seed, "model_s": round(model_s, 2), **_round(m)})
        print(json.dumps(per_scene[-1]), flush=True)
        # pool across scenes by offsetting each scene's pixel frame so no two scenes overlap
        import shapely.affinity as aff
        dx = seed * size * 2.0
        preds += [aff.translate(g, dx) for g in p]
        confs += c
        labels += [aff.translate(g, dx) for g in gt]
    return per_scene, buildings_metrics.evaluate(preds, confs, labels)


def pipeline(seeds, size, model_path, workdir):
    per_scene = []
    for seed in seeds:
        d = os.path.join(workdir, f"seed{seed}")
        run = lambda *a: subprocess.run([sys.executable, "-m", "tessera.pipelines.cli", *a], check=True, cwd=ROOT,
                                        stdout=subprocess.DEVNULL)
        run("synth-scene", "--output", d, "--seed", str(seed), "--size", str(size))
        run("buildings", "--input", os.path.join(d, "scene.tif"), "--output", os.path.join(d, "pred"),
            "--model", model_path)
        out = os.path.join(d, "eval.json")
        run("buildings-eval", "--predictions", os.path.join(d, "pred"), "--labels",
            os.path.join(d, "buildings.geojson"), "--output-json", out)
        with open(out) as f:
            m = json.load(f)
        per_scene.append({"seed": seed, **_round(m)})
        print(json.dumps(per_scene[-1]), flush=True)
    tp = sum(s["tp"] for s in per_scene)
    n_pred = sum(s["n_predictions"] for s in per_scene)
    n_lab = sum(s["n_labels"] for s in per_scene)
    p, r = tp / max(n_pred, 1), tp / max(n_lab, 1)
    pooled = {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9), "tp": tp,
              "n_predictions": n_pred, "n_labels": n_lab,
              "ap50_mean_of_scenes": float(np.mean([s["ap50"] for s in per_scene]))}
    return per_scene, pooled


def _round(m):
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="5000:5010")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--mode", choices=("direct", "pipeline"), default="direct")
    p.add_argument("--threshold", type=float, default=None,
                   help="direct mode: default the model card's, as `tessera buildings` does")
    p.add_argument("--core-threshold", type=float, default=0.8)
    p.add_argument("--min-confidence", type=float, default=None,
                   help="direct mode (the pipeline mode uses `tessera buildings`' default): "
                        "default the model card's, as `tessera buildings` does")
    p.add_argument("--output-json", default="")
    args = p.parse_args(argv)
    seeds = _seeds(args.seeds)
    leaked = [s for s in seeds if any(s in r for r in TRAINING_SEEDS)]
    if leaked:
        raise SystemExit(f"seeds {leaked} were used in training; pick unseen seeds")
    t0 = time.time()
    if args.mode == "direct":
        used = unet.inference_thresholds(args.model, args.threshold, args.min_confidence)
        per_scene, pooled = direct(seeds, args.size, args.model, used["threshold"], args.core_threshold,
                                   used["min_confidence"])
    else:
        used = unet.inference_thresholds(args.model)  # what `tessera buildings` runs with by default
        with tempfile.TemporaryDirectory() as tmp:
            per_scene, pooled = pipeline(seeds, args.size, args.model, tmp)
    result = {"mode": args.mode, "seeds": args.seeds, **used, "size": args.size,
              "model": os.path.relpath(args.model, ROOT),
              "pooled": _round(pooled), "targets": {"f1": 0.85, "ap50": 0.80},
              "seconds": round(time.time() - t0, 1)}
    f1 = pooled["f1"]
    ap = pooled.get("ap50", pooled.get("ap50_mean_of_scenes"))
    result["meets_targets"] = bool(f1 >= 0.85 and ap >= 0.80)
    print(json.dumps(result, indent=1))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({**result, "per_scene": per_scene}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
