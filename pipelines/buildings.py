"""Open Buildings inference: GeoTIFF tiles -> U-Net (RunInference) -> building polygons -> GeoParquet.

Local (DirectRunner):
  tessera buildings --input 'scenes/*.tif' --output out/buildings

Dataflow, CPU workers:
  tessera buildings --input 'gs://BUCKET/tiles/*.tif' --output gs://BUCKET/buildings \\
    --runner DataflowRunner --project PROJECT --region us-central1 \\
    --temp_location gs://BUCKET/tmp --setup_file ./setup.py --machine_type n2-standard-8

Dataflow, GPU for the model stage (resource hint; IMAGE built from docker/Dockerfile.gpu):
  tessera buildings --input 'gs://BUCKET/tiles/*.tif' --output gs://BUCKET/buildings \\
    --runner DataflowRunner --project PROJECT --region us-central1 \\
    --temp_location gs://BUCKET/tmp --sdk_container_image IMAGE --sdk_location container \\
    --experiments use_runner_v2 --machine_type g2-standard-4 \\
    --accelerator 'type:nvidia-l4;count:1;install-nvidia-driver' --batch-size 16 --tile-size 1024

Stages: MatchFiles -> InspectRasters -> PlanWindows -> GroupWindowSources (windows shared by adjacent
files) -> ReadWindow -> RunInference(U-Net) -> Polygonize (owned instances only, so each building
once) -> WriteBuildings (GeoParquet 1.1 or CSV, partitioned by S2 cell) -> dead letters -> manifest +
COMPLETED. Output layout: OUTPUT/buildings/s2_token=TOKEN/part-00000.parquet (or
OUTPUT/buildings/TOKEN_buildings.csv.gz), OUTPUT/errors/dead_letters-*.jsonl, OUTPUT/manifest.json,
OUTPUT/COMPLETED.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Callable

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio

from tessera import fileio
from tessera.models.handlers.jax_model import JaxModelHandler
from tessera.pipelines import common
from tessera.transforms.buildings.fields import DEFAULT_PLUS_CODE_LENGTH, DEFAULT_S2_LEVEL
from tessera.transforms.buildings.stages import PolygonizeWindowsFn, ReadWindows, WriteBuildings
from tessera.transforms.core.model_stage import RunModelStage
from tessera.transforms.core.outputs import FinalizeOutput, WriteDeadLetters
from tessera.transforms.core.progress import LogProgress

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "models", "weights", "unet_buildings.msgpack")


def _unet_load(path: str):
    from tessera.models import unet
    return unet.load(path)


@dataclasses.dataclass(frozen=True)
class BuildingsConfig:
    input: str
    output: str
    model: str = DEFAULT_MODEL
    tile_size: int = 512
    overlap: int = 128
    threshold: float = 0.5
    core_threshold: float = 0.8
    min_area_m2: float = 4.0
    min_core_area_m2: float = 16.0  # the smallest building (4 m x 4 m): smaller cores split nothing
    min_confidence: float = 0.0
    simplify_px: float = 0.5
    format: str = "geoparquet"
    s2_level: int = DEFAULT_S2_LEVEL
    plus_code_length: int = DEFAULT_PLUS_CODE_LENGTH
    batch_size: int = 1
    accelerator: str | None = None
    max_rows_per_file: int = 250_000
    # module-level `path -> JaxModel`; tests pass a stand-in. Not part of the manifest config.
    load_fn: Callable = dataclasses.field(default=_unet_load, compare=False, repr=False)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("load_fn")
        return out


_DEFAULT = BuildingsConfig(input="", output="")  # the flags' defaults are the config's, stated once


def build(pipeline: beam.Pipeline, config: BuildingsConfig) -> dict:
    """Wire the stages; returns the named output PCollections."""
    handler = JaxModelHandler(config.load_fn, config.model, bucket_sizes=(1, config.batch_size),
                              min_batch_size=1, max_batch_size=config.batch_size,
                              accelerator=config.accelerator)
    paths = (pipeline
             | "MatchFiles" >> beam_fileio.MatchFiles(config.input)
             | "Paths" >> beam.Map(lambda m: m.path)
             | "CountTiles" >> LogProgress("buildings", "files_matched", every=100))
    windows, read_dead = paths | "ReadWindows" >> ReadWindows(config.tile_size, config.overlap)
    windows = windows | "WindowProgress" >> LogProgress("buildings", "windows_to_model", every=50)
    model = windows | "Model" >> RunModelStage(handler, stage="unet")
    buildings = (model.outputs
                 | "Polygonize" >> beam.ParDo(PolygonizeWindowsFn(
                     threshold=config.threshold, core_threshold=config.core_threshold,
                     min_area_m2=config.min_area_m2, min_core_area_m2=config.min_core_area_m2,
                     min_confidence=config.min_confidence,
                     simplify_px=config.simplify_px, s2_level=config.s2_level,
                     plus_code_length=config.plus_code_length))
                 | "BuildingProgress" >> LogProgress("buildings", "buildings_found", every=5000))
    files = buildings | "WriteBuildings" >> WriteBuildings(config.output, config.format, config.max_rows_per_file)
    dead = (read_dead, model.dead_letters) | "AllDeadLetters" >> beam.Flatten()
    dead_files = dead | "WriteDeadLetters" >> WriteDeadLetters(config.output)
    done = ({"windows": windows, "buildings": buildings, "files": files, "dead_letters": dead,
             "dead_letter_files": dead_files}
            | "Finalize" >> FinalizeOutput(config.output, workload="buildings", config=config.to_dict(),
                                           inputs=config.input, model_path=config.model))
    return {"buildings": buildings, "files": files, "dead_letters": dead, "completed": done}


def _clear_outputs(output: str) -> None:
    """Remove a previous run's marker first (so a crash never leaves a stale COMPLETED), then its files."""
    for name in ("COMPLETED", "manifest.json", "buildings", "errors"):
        path = fileio.join(output, name)
        if fileio.exists(path):
            fileio.delete([path])


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    parser = common.make_parser("tessera buildings", __doc__)
    parser.add_argument("--input", required=True, help="GeoTIFF glob (local or gs://).")
    parser.add_argument("--output", required=True, help="Output directory (local or gs://).")
    parser.add_argument("--model", default=_DEFAULT.model, help="U-Net flax msgpack (default: shipped model).")
    parser.add_argument("--tile-size", type=int, default=_DEFAULT.tile_size, help="Window size in pixels (multiple of 16).")
    parser.add_argument("--overlap", type=int, default=_DEFAULT.overlap,
                        help="Overlap of adjacent windows in pixels; buildings up to overlap/2 around "
                             "their centroid come out whole.")
    parser.add_argument("--threshold", type=float, default=_DEFAULT.threshold, help="Building probability threshold.")
    parser.add_argument("--min-area", type=float, default=_DEFAULT.min_area_m2, help="Minimum building area, m^2.")
    parser.add_argument("--min-core-area", type=float, default=_DEFAULT.min_core_area_m2,
                        help="Touching buildings are split only between high-confidence cores at least "
                             "this large, m^2 (a huge value turns splitting off).")
    parser.add_argument("--min-confidence", type=float, default=_DEFAULT.min_confidence, help="Drop buildings below this confidence.")
    parser.add_argument("--format", choices=("geoparquet", "csv"), default=_DEFAULT.format)
    parser.add_argument("--s2-level", type=int, default=_DEFAULT.s2_level, help="S2 level of the file partitions.")
    parser.add_argument("--batch-size", type=int, default=_DEFAULT.batch_size,
                        help="Windows per model call (1 is fastest on CPU; 8-32 on GPU).")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace a finished output directory (default: leave it and exit).")
    common.add_accelerator_flag(parser)
    args, options = common.parse_pipeline_args(parser, argv)
    from tessera.fileio import match_paths
    from tessera.transforms.core.outputs import is_complete
    if not match_paths(args.input):
        return common.input_error("tessera buildings", f"no file matches {args.input!r}")
    if is_complete(args.output):
        if not args.overwrite:
            logging.info("buildings: %s is already COMPLETED; pass --overwrite to redo it", args.output)
            return 0
        _clear_outputs(args.output)
    config = BuildingsConfig(
        input=args.input, output=args.output, model=args.model, tile_size=args.tile_size,
        overlap=args.overlap, threshold=args.threshold, min_area_m2=args.min_area,
        min_core_area_m2=args.min_core_area,
        min_confidence=args.min_confidence, format=args.format, s2_level=args.s2_level,
        batch_size=args.batch_size, accelerator=args.accelerator)
    counts = common.run_pipeline(build, config, options)
    logging.info("buildings: %d written to %s", counts.get("buildings:buildings_written", 0), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
