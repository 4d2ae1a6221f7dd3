"""`tessera label` settings: one frozen dataclass, its flags and their checks (tessera.config)."""
from __future__ import annotations

import dataclasses
import datetime

from tessera.config import ACCELERATOR_HELP, ConfigError, check_range, setting
from tessera.models import registry
from tessera.transforms.label.decode import DEFAULT_MAX_PIXELS

INPUT_FORMATS = ("auto", "images", "parquet", "tfrecord")


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    inputs: tuple[str, ...] = setting(
        flag="--input", help="glob of images (jpg/png/tiff/webp) or of Parquet/TFRecord files; repeatable")
    output: str = setting(help="output directory (local or gs://)")
    model: str = setting(help=registry.usage("label"))
    prompt: str = setting("", help="PaliGemma prompt, e.g. 'caption en'")
    batch_size: int = setting(8, help="images per model call (>= 1)")
    resume: bool = setting(False, manifest=False,
                           help="skip keys already labelled (or dead-lettered) in --output")
    accelerator: str | None = setting(None, help=ACCELERATOR_HELP)
    input_format: str = setting("auto", choices=INPUT_FORMATS)
    image_column: str | None = setting(
        None, help="Parquet column / TFRecord feature with encoded image bytes "
                   "(default: first of image/encoded, image, ...)")
    key_column: str | None = setting(None, help="column / feature with the record id (default: id, key, ...)")
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, help="larger images are refused as decompression bombs")
    max_file_bytes: int = setting(256 << 20, cli=False)
    bucket_shards: int = setting(16, help="parallel batchers per size bucket")
    rows_per_shard: int = setting(5000, cli=False)
    run_id: str | None = setting(None, manifest=False,
                                 help="names this run's error files (default: UTC timestamp)")
    resolution: int | None = setting(None, type=int, help="PaliGemma: 224, 448 or 896")
    max_decode_len: int | None = setting(None, type=int, help="PaliGemma answer tokens")
    top_k: int = setting(5, help="SavedModel classes per image")

    def __post_init__(self):
        if not self.inputs:
            raise ConfigError("--input: give at least one glob")
        try:
            registry.parse(self.model, workload="label")
        except ValueError as err:
            raise ConfigError(f"--model: {err}") from None
        for name in ("batch_size", "max_pixels", "max_file_bytes", "bucket_shards", "rows_per_shard", "top_k"):
            check_range(self, name, 1)
        for name in ("resolution", "max_decode_len"):
            if getattr(self, name) is not None:
                check_range(self, name, 1)
        if self.run_id is None:  # frozen: the derived default is set once, here
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
            object.__setattr__(self, "run_id", stamp)
