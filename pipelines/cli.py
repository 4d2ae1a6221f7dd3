"""`tessera <workload> [flags]`: one entry point that dispatches to each workload's `main(argv)`.

Each workload module also runs on its own as `python -m tessera.pipelines.<module>`.
"""
from __future__ import annotations

import importlib
import sys

# name -> (module, one-line summary). Modules are imported lazily so `tessera --help` stays fast.
WORKLOADS: dict[str, tuple[str, str]] = {
    "buildings": ("tessera.pipelines.buildings", "Open Buildings: GeoTIFF tiles -> U-Net -> GeoParquet buildings."),
    "buildings-train": ("tessera.pipelines.buildings_train", "Train the building-segmentation U-Net."),
    "buildings-eval": ("tessera.pipelines.buildings_eval", "AP50 / P / R / F1 of predicted buildings against labels."),
    "synth-scene": ("tessera.pipelines.synth_scene", "Write a synthetic georeferenced scene with true footprints."),
    "scan-generate": ("tessera.pipelines.scan_generate", "Generate the SCAN dataset with derivations."),
    "mcd-split": ("tessera.pipelines.mcd_split", "Maximum-Compound-Divergence train/dev/test split (CFQ method)."),
    "mcd-stats": ("tessera.pipelines.mcd_stats", "Recompute atom/compound divergences of a split file."),
    "cnn-zoo": ("tessera.pipelines.cnn_zoo", "Train a population of small CNNs (Small CNN Zoo layout)."),
    "zoo-predict": ("tessera.pipelines.zoo_predict", "Predict CNN accuracy from weight statistics."),
    "mixture": ("tessera.pipelines.mixture", "Materialize a weighted, deduplicated, decontaminated image-text mixture."),
    "label": ("tessera.pipelines.label", "Batch-label images with OCR, PaliGemma or a SavedModel."),
    "demo": ("tessera.pipelines.demo", "The quick-start demo: run the main job on bundled data."),
}


def _usage() -> str:
    width = max(len(n) for n in WORKLOADS)
    lines = ["usage: tessera <workload> [flags]  (tessera <workload> --help for its flags)", "", "workloads:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in WORKLOADS.items()]
    lines += ["", "Flags a workload does not know go to Beam's PipelineOptions (--runner, --project, ...)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in WORKLOADS:
        print(f"tessera: unknown workload {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(WORKLOADS[name][0])
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
