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

import sys

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio

from tessera import fileio
from tessera.config import ConfigError, to_dict
from tessera.models import registry
from tessera.models.base import SHIPPED_UNET as DEFAULT_MODEL
from tessera.pipelines import common
from tessera.transforms.buildings.config import BuildingsConfig
from tessera.transforms.buildings.piece_stages import (ReadAllPieces, ReadDoneWindows, RemovePieces,
                                                       WritePieces)
from tessera.transforms.buildings.pieces import PIECES_SUBDIR
from tessera.transforms.buildings.stages import PolygonizeWindowsFn, ReadWindows, WriteBuildings
from tessera.transforms.core.model_stage import RunModelStage
from tessera.transforms.core.output_dir import OutputContract
from tessera.transforms.core.outputs import FinalizeOutput, WriteDeadLetters
from tessera.transforms.core.progress import LogProgress

PROG = "tessera buildings"
__all__ = ["BuildingsConfig", "DEFAULT_MODEL", "build", "main"]
OUTPUT = OutputContract("buildings", owned=("buildings/", "errors/", PIECES_SUBDIR + "/"),
                        resumable=True)


def build(pipeline: beam.Pipeline, config: BuildingsConfig) -> dict:
    """Wire the stages; returns the named output PCollections."""
    config = config.with_model_defaults()  # main did it already; direct callers get it here
    handler = registry.make_handler(config.model_spec, batch_size=config.batch_size,
                                    accelerator=config.accelerator)
    pieces_dir = fileio.join(config.output, PIECES_SUBDIR)
    done = pipeline | "ReadDoneWindows" >> ReadDoneWindows(pieces_dir) if config.resume else None
    paths = (pipeline
             | "MatchFiles" >> beam_fileio.MatchFiles(config.input)
             | "Paths" >> beam.Map(lambda m: m.path)
             | "CountTiles" >> LogProgress("buildings", "files_matched", every=100))
    windows, read_dead, planned = paths | "ReadWindows" >> ReadWindows(
        config.tile_size, config.overlap, config.band_numbers or None, config.gsd_m, done=done)
    model = windows | "Model" >> RunModelStage(handler, stage="unet")
    polygonized = (model.outputs
                   | "Polygonize" >> beam.ParDo(PolygonizeWindowsFn(
                       threshold=config.threshold, core_threshold=config.core_threshold,
                       min_area_m2=config.min_area_m2, min_core_area_m2=config.min_core_area_m2,
                       min_confidence=config.min_confidence,
                       simplify_px=config.simplify_px, s2_level=config.s2_level,
                       plus_code_length=config.plus_code_length))
                   | "WindowProgress" >> LogProgress("buildings", "windows_done", every=50, total=planned))
    # Finished windows are written as pieces while the model runs (what --resume keeps); the
    # S2-partitioned files are written from every piece once all windows are done.
    pieces = polygonized | "WritePieces" >> WritePieces(pieces_dir, config.windows_per_piece,
                                                            config.flush_seconds)
    buildings = pieces | "ReadAllPieces" >> ReadAllPieces(pieces_dir)
    files = buildings | "WriteBuildings" >> WriteBuildings(config.output, config.format, config.max_rows_per_file)
    removed = files | "RemovePieces" >> RemovePieces(pieces_dir)
    dead = (read_dead, model.dead_letters) | "AllDeadLetters" >> beam.Flatten()
    dead_files = dead | "WriteDeadLetters" >> WriteDeadLetters(config.output)
    done_counts = {"windows": windows, "buildings": buildings, "files": files, "dead_letters": dead,
                   "dead_letter_files": dead_files, "pieces_removed": removed}
    if done is not None:
        done_counts["windows_done_before"] = done
    completed = done_counts | "Finalize" >> FinalizeOutput(
        config.output, workload="buildings", config=to_dict(config), inputs=config.input,
        model_path=config.model_spec.path, contract=OUTPUT)
    return {"buildings": buildings, "files": files, "dead_letters": dead, "completed": completed}


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, BuildingsConfig, argv)
        common.require_match("--input", config.input)
        registry.check_files(config.model_spec)
        config = config.with_model_defaults()
    except (ConfigError, ValueError) as err:
        return common.input_error(PROG, err)
    return common.run_workload(PROG, build, config, options, OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
