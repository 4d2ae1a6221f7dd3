"""Buildings on real imagery: `tessera buildings` (default flags) + `buildings-eval` on real tiles.

    python benchmarks/buildings_real.py --model M.msgpack            # the dev set (model selection)
    python benchmarks/buildings_real.py --model M.msgpack --test     # + the held-out Atlanta tile
    python benchmarks/buildings_real.py --model M.msgpack --split out/dev_split   # east halves only

`--split` scores the east halves written by `python -m tessera.training.buildings.dev_split`: the
selection set of a model fine-tuned on the west halves (every model compared there is scored there).

The dev set is the hand-digitized tiles in training/buildings/dev_labels (Vegas, Rotterdam), with
their building-free regions (false buildings on trees, lawns, shadows are counted). Scores are
summed over tiles (micro precision / recall / F1 at IoU 0.5). The held-out SpaceNet 4 Atlanta tile
(data/real/test) is measured at most once per model: every measurement is appended to
docs/results/buildings_test_measurements.jsonl with the model's sha256, and a model already in
that log is refused. Needs `make real-data`.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_LABELS = os.path.join(REPO, "training", "buildings", "dev_labels")
REAL = os.path.join(REPO, "data", "real")
TEST_LOG = os.path.join(REPO, "docs", "results", "buildings_test_measurements.jsonl")
TILE_FILES = {"vegas_road_mask_input": "dev/vegas_road_mask_input.tif"}


def run_tile(model: str, image: str, labels: str, free: str | None, out: str, extra=()) -> dict:
    from tessera.pipelines import buildings, buildings_eval

    pred = os.path.join(out, "buildings")
    code = buildings.main(["--input", image, "--output", pred, "--model", model, "--overwrite",
                           *extra, "--direct_num_workers", "1", "--direct_running_mode", "in_memory"])
    if code:
        raise SystemExit(f"tessera buildings failed on {image}")
    args = ["--predictions", pred, "--labels", labels, "--image", image,
            "--output-json", os.path.join(out, "eval.json"), "--png", os.path.join(out, "overlay.png"),
            "--pr-png", os.path.join(out, "pr.png")]
    if free:
        args += ["--free-regions", free]
    if buildings_eval.main(args):
        raise SystemExit(f"tessera buildings-eval failed on {image}")
    with open(os.path.join(out, "eval.json")) as f:
        return json.load(f)


def summarize(results: dict[str, dict]) -> dict:
    tp = sum(r["tp"] for r in results.values())
    fp = sum(r["fp"] for r in results.values())
    fn = sum(r["fn"] for r in results.values())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    free = sum(x.get("free_regions", {}).get("false_buildings", 0) for x in results.values())
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp,
            "fn": fn, "false_buildings_in_free_regions": free}


def dev_tiles(split: str | None = None) -> list[tuple[str, str, str, str | None]]:
    """(name, image, labels, free regions) of every labelled dev tile present (with `split`: of
    every east half holding a building)."""
    if split:
        east = os.path.join(split, "east")
        out = []
        for labels in sorted(glob.glob(os.path.join(east, "labels", "*.geojson"))):
            stem = os.path.basename(labels)[:-len(".geojson")]
            free = os.path.join(east, "free", f"{stem}.free.geojson")
            out.append((stem, os.path.join(east, "images", f"{stem}.tif"), labels,
                        free if os.path.exists(free) else None))
        return out
    out = []
    for labels in sorted(glob.glob(os.path.join(DEV_LABELS, "*.geojson"))):
        if labels.endswith(".free.geojson"):
            continue
        stem = os.path.basename(labels)[:-len(".geojson")]
        image = os.path.join(REAL, TILE_FILES.get(stem, f"dev/{stem}.tif"))
        free = labels[:-len(".geojson")] + ".free.geojson"
        if os.path.exists(image):
            out.append((stem, image, labels, free if os.path.exists(free) else None))
    return out


def measure_test(model: str, out: str, force: bool) -> dict:
    from tessera import fileio
    from tessera.models.unet import card_defaults

    digest = fileio.file_sha256(model)
    seen = []
    if os.path.exists(TEST_LOG):
        with open(TEST_LOG) as f:
            seen = [json.loads(line) for line in f if line.strip()]
    if any(m["model_sha256"] == digest for m in seen) and not force:
        raise SystemExit(f"{model} (sha256 {digest[:12]}) was already measured on the test tile")
    image = os.path.join(REAL, "test", "atlanta_sample_geotiff.tif")
    labels = os.path.join(REAL, "test", "atlanta_geotiff_labels.geojson")
    metrics = run_tile(model, image, labels, None, os.path.join(out, "test_atlanta"))
    record = {"model": os.path.relpath(model, REPO) if model.startswith(REPO) else model,
              "model_sha256": digest, "date": datetime.date.today().isoformat(),
              **card_defaults(model),  # default flags: the model card's min_confidence and threshold
              **{k: metrics[k] for k in ("ap50", "precision", "recall", "f1", "tp", "fp", "fn")}}
    os.makedirs(os.path.dirname(TEST_LOG), exist_ok=True)
    with open(TEST_LOG, "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    from tessera.models.base import SHIPPED_UNET

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=SHIPPED_UNET)
    parser.add_argument("--out", default=os.path.join(REPO, "out", "real"))
    parser.add_argument("--test", action="store_true", help="also measure the held-out tile (once per model)")
    parser.add_argument("--force", action="store_true", help="measure the test tile again (logged too)")
    parser.add_argument("--skip-dev", action="store_true")
    parser.add_argument("--split", default="", help="score the east halves of this dev split instead")
    args = parser.parse_args(argv)
    model = os.path.abspath(args.model)
    name = os.path.splitext(os.path.basename(model))[0] + ("_east" if args.split else "")
    report = {"model": model}
    if not args.skip_dev:
        tiles = dev_tiles(args.split or None)
        if not tiles:
            raise SystemExit("no dev tiles: run `make real-data` (and check training/buildings/dev_labels)")
        results = {stem: run_tile(model, image, labels, free, os.path.join(args.out, name, stem))
                   for stem, image, labels, free in tiles}
        report["dev"] = {stem: {k: r.get(k) for k in ("precision", "recall", "f1", "tp", "fp", "fn")}
                         | {"false_in_free": r.get("free_regions", {}).get("false_buildings")}
                         for stem, r in results.items()}
        report["dev_total" if not args.split else "east_total"] = summarize(results)
    if args.test:
        report["test"] = measure_test(model, os.path.join(args.out, name), args.force)
    os.makedirs(os.path.join(args.out, name), exist_ok=True)
    with open(os.path.join(args.out, name, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    sys.exit(main())
