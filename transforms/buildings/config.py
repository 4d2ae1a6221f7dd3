"""`tessera buildings` settings: one frozen dataclass, its flags and their checks (tessera.config)."""
from __future__ import annotations

import dataclasses

from tessera.config import (ACCELERATOR_HELP, OVERWRITE_HELP, RESUME_HELP, ConfigError, check,
                            check_range, setting)
from tessera.models import registry
from tessera.models.base import SHIPPED_UNET
from tessera.transforms.buildings.fields import DEFAULT_PLUS_CODE_LENGTH, DEFAULT_S2_LEVEL
from tessera.transforms.buildings.grid import check_window_config
from tessera.transforms.buildings.raster import MODEL_GSD_M

FORMATS = ("geoparquet", "csv")


@dataclasses.dataclass(frozen=True)
class BuildingsConfig:
    input: str = setting(help="GeoTIFF glob (local or gs://).")
    output: str = setting(help="Output directory (local or gs://).")
    model: str = setting(SHIPPED_UNET,
                         help="U-Net checkpoint: a flax msgpack path, or FAMILY:PATH from the model "
                              "registry (default: the shipped model).")
    bands: str = setting(
        "", metavar="N[,N,N]",
        help="File band numbers to read: one (panchromatic) or three in R,G,B order (e.g. 3,2,1 "
             "for blue-green-red-NIR multispectral). Default: band 1 of one-band files, else 1,2,3.")
    gsd_m: float = setting(
        MODEL_GSD_M, flag="--gsd",
        help="The model's pixel size in metres: rasters whose pixels differ by more than 10%% are "
             "resampled to it (0: never). Geographic (EPSG:4326), Web Mercator and rotated rasters "
             "are always warped to local UTM.")
    tile_size: int = setting(512, help="Window size in pixels (multiple of 16).")
    overlap: int = setting(128, help="Overlap of adjacent windows in pixels (even); buildings up to "
                                     "overlap/2 around their centroid come out whole.")
    threshold: float | None = setting(
        None, type=float, help="Building probability threshold, in (0, 1); default: the model "
                               "card's `threshold` (chosen on the real dev set), else 0.5.")
    core_threshold: float = setting(0.8, cli=False)
    min_area_m2: float = setting(4.0, flag="--min-area", help="Minimum building area, m^2.")
    # the smallest building (4 m x 4 m): smaller cores split nothing
    min_core_area_m2: float = setting(
        16.0, flag="--min-core-area",
        help="Touching buildings are split only between high-confidence cores at least this large, "
             "m^2 (a huge value turns splitting off).")
    min_confidence: float | None = setting(
        None, type=float, help="Drop buildings below this confidence, in [0, 1]; default: the "
                               "model card's `min_confidence` (the shipped model's was chosen on "
                               "the real dev set), else 0.")
    simplify_px: float = setting(0.5, cli=False)
    format: str = setting("geoparquet", choices=FORMATS, help="Output format.")
    s2_level: int = setting(DEFAULT_S2_LEVEL, help="S2 level of the file partitions (0-30).")
    plus_code_length: int = setting(DEFAULT_PLUS_CODE_LENGTH, cli=False)
    batch_size: int = setting(1, help="Windows per model call (1 is fastest on CPU; 8-32 on GPU).")
    accelerator: str | None = setting(None, help=ACCELERATOR_HELP)
    max_rows_per_file: int = setting(250_000, cli=False)
    # finished windows per piece (what a kill can lose at most, per worker; --resume keeps the rest)
    windows_per_piece: int = setting(64, cli=False, manifest=False)
    flush_seconds: float = setting(
        60.0, manifest=False, help="Write finished windows as a piece at least this often (what "
                                   "a kill can lose; --resume skips what was written).")
    overwrite: bool = setting(False, manifest=False, help=OVERWRITE_HELP)
    resume: bool = setting(False, manifest=False, help=RESUME_HELP)

    def __post_init__(self):
        try:
            check_window_config(self.tile_size, self.overlap)
        except ValueError as err:
            raise ConfigError(f"--tile-size/--overlap: {err}") from None
        if self.threshold is not None:
            check_range(self, "threshold", 0.0, 1.0, low_open=True, high_open=True)
        check_range(self, "core_threshold", self.threshold or 0.0, 1.0)
        if self.min_confidence is not None:
            check_range(self, "min_confidence", 0.0, 1.0)
        check_range(self, "min_area_m2", 0.0)
        check_range(self, "min_core_area_m2", 0.0)
        check_range(self, "s2_level", 0, 30)
        check_range(self, "batch_size", 1)
        check_range(self, "max_rows_per_file", 1)
        check_range(self, "windows_per_piece", 1)
        check_range(self, "flush_seconds", 0.0, low_open=True)
        check_range(self, "gsd_m", 0.0)
        try:
            numbers = self.band_numbers
        except ValueError:
            numbers = (0,)
        check(len(numbers) in (0, 1, 3) and all(b >= 1 for b in numbers),
              f"--bands takes one or three band numbers >= 1, like 3,2,1 (got {self.bands!r})")
        check(self.format in FORMATS, f"--format must be one of {', '.join(FORMATS)}")
        try:
            registry.parse(self.model, workload="buildings", default_family="unet")
        except ValueError as err:
            raise ConfigError(f"--model: {err}") from None

    @property
    def band_numbers(self) -> tuple[int, ...]:
        return tuple(int(b) for b in self.bands.split(",")) if self.bands.strip() else ()

    @property
    def model_spec(self) -> registry.ModelSpec:
        return registry.parse(self.model, workload="buildings", default_family="unet")

    def with_model_defaults(self) -> "BuildingsConfig":
        """This config with `--min-confidence` and `--threshold` filled from the model card when not
        given, so the manifest (and the rerun check) records the numbers the run used."""
        if self.min_confidence is not None and self.threshold is not None:
            return self
        from tessera.models.unet import inference_thresholds
        return dataclasses.replace(self, **inference_thresholds(self.model_spec.path, self.threshold,
                                                                self.min_confidence))



@dataclasses.dataclass(frozen=True)
class BuildingsEvalConfig:
    predictions: str = setting(help="output dir of `tessera buildings` (or one file)")
    labels: str = setting(help="label file (GeoJSON, GeoParquet, ...)")
    image: str = setting("", help="GeoTIFF to draw under the overlay (also fixes the CRS)")
    min_confidence: float = setting(0.0, help="ignore predictions below this, in [0, 1]")
    iou: float = setting(0.5, help="IoU a prediction needs with a label to count as found, in (0, 1] "
                                 "(0.5: the SpaceNet and Open Buildings convention)")
    free_regions: str = setting("", help="vector file of building-free regions (trees, lawns, "
                                         "shadows, ...): predictions inside them are counted")
    output_json: str = setting("", help="also write the metrics here")
    png: str = setting("", help="write the overlay PNG here")
    pr_png: str = setting("", help="write the precision-recall curve PNG here")

    def __post_init__(self):
        check_range(self, "min_confidence", 0.0, 1.0)
        check_range(self, "iou", 0.0, 1.0, low_open=True)
