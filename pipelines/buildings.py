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

import logging
import sys

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio

from tessera import fileio
from tessera.config import ConfigError, to_dict
from tessera.models import registry
from tessera.models.base import SHIPPED_UNET as DEFAULT_MODEL
from tessera.pipelines import common
from tessera.transforms.buildings.config import BuildingsConfig
from tessera.transforms.buildings.stages import PolygonizeWindowsFn, ReadWindows, WriteBuildings
from tessera.transforms.core.model_stage import RunModelStage
from tessera.transforms.core.outputs import FinalizeOutput, WriteDeadLetters, is_complete
from tessera.transforms.core.progress import LogProgress

PROG = "tessera buildings"
__all__ = ["BuildingsConfig", "DEFAULT_MODEL", "build", "main"]


def build(pipeline: beam.Pipeline, config: BuildingsConfig) -> dict:
    """Wire the stages; returns the named output PCollections."""
    handler = registry.make_handler(config.model_spec, batch_size=config.batch_size,
                                    accelerator=config.accelerator)
    paths = (pipeline
             | "MatchFiles" >> beam_fileio.MatchFiles(config.input)
             | "Paths" >> beam.Map(lambda m: m.path)
             | "CountTiles" >> LogProgress("buildings", "files_matched", every=100))
    windows, read_dead = paths | "ReadWindows" >> ReadWindows(
        config.tile_size, config.overlap, config.band_numbers or None, config.gsd_m)
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
            | "Finalize" >> FinalizeOutput(config.output, workload="buildings", config=to_dict(config),
                                           inputs=config.input, model_path=config.model_spec.path))
    return {"buildings": buildings, "files": files, "dead_letters": dead, "completed": done}


def _clear_outputs(output: str) -> None:
    """Remove a previous run's marker first (so a crash never leaves a stale COMPLETED), then its files."""
    for name in ("COMPLETED", "manifest.json", "buildings", "errors"):
        path = fileio.join(output, name)
        if fileio.exists(path):
            fileio.delete([path])


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, BuildingsConfig, argv)
    except ConfigError as err:
        return common.input_error(PROG, err)
    if not fileio.match_paths(config.input):
        return common.input_error(PROG, f"no file matches {config.input!r}")
    if is_complete(config.output):
        if not config.overwrite:
            logging.info("buildings: %s is already COMPLETED; pass --overwrite to redo it", config.output)
            return 0
        _clear_outputs(config.output)
    counts = common.run_pipeline(build, config, options)
    logging.info("buildings: %d written to %s", counts.get("buildings:buildings_written", 0), config.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
