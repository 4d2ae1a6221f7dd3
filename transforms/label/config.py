"""`tessera label` settings: one frozen dataclass, its flags and their checks (tessera.config)."""
from __future__ import annotations

import collections
import dataclasses
import datetime

from tessera.config import ACCELERATOR_HELP, OVERWRITE_HELP, ConfigError, check_range, setting
from tessera.models import registry
from tessera.transforms.label.decode import DEFAULT_MAX_PIXELS

INPUT_FORMATS = ("auto", "images", "parquet", "tfrecord")
ZERO_SHOT_FAMILIES = ("siglip", "lit")  # need --classes/--classes-file/--embeddings
# may take them: names for the head's classes, embeddings
CLASSIFIER_FAMILIES = ("vit", "mixer", "vmoe")


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    inputs: tuple[str, ...] = setting(
        flag="--input", help="glob of images (jpg/png/tiff/webp) or of Parquet/TFRecord files; repeatable")
    output: str = setting(help="output directory (local or gs://)")
    model: str = setting(help=registry.usage("label"))
    prompt: str = setting("", help="PaliGemma prompt, e.g. 'caption en'; siglip/lit: a class "
                                   "template with {}, e.g. 'a photo of a {}.'")
    batch_size: int = setting(8, help="images per model call (>= 1)")
    resume: bool = setting(False, manifest=False,
                           help="skip keys already labelled (or dead-lettered) in --output")
    overwrite: bool = setting(False, manifest=False, help=OVERWRITE_HELP)
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
    flush_seconds: float = setting(
        60.0, manifest=False, help="write finished rows as a shard at least this often (what a "
                                   "kill can lose; --resume skips what was written)")
    run_id: str | None = setting(None, manifest=False,
                                 help="names this run's error files (default: UTC timestamp)")
    resolution: int | None = setting(None, type=int, help="PaliGemma: 224, 448 or 896")
    max_decode_len: int | None = setting(None, type=int, help="PaliGemma answer tokens")
    top_k: int = setting(5, help="SavedModel, siglip/lit, vit/mixer: classes kept per image")
    classes: str = setting("", help="siglip/lit: comma-separated class names, e.g. "
                                    "'cat,dog,car'; vit/mixer: the head's class names, "
                                    "replacing labels.txt")
    classes_file: str = setting("", help="siglip/lit, vit/mixer: text file (local or gs://), "
                                         "one class per line")
    embeddings: bool = setting(False, help="siglip/lit, vit/mixer: also write each image's "
                                           "L2-normalised embedding (the `embedding` column)")
    queries: str = setting("", help="owlvit: the texts to detect, separated by ';', e.g. "
                                    "'car ; roof ; pool' (the boxes' labels)")
    # 0.1: the threshold of the OWL-ViT authors' and Hugging Face's examples; 100 boxes: COCO's
    # maxDets, far more than an image of a few objects keeps above 0.1
    min_score: float = setting(0.1, help="owlvit: drop boxes whose best query scores lower")
    max_boxes: int = setting(100, help="owlvit: boxes kept per image, best first")
    capacity_ratio: float | None = setting(
        None, type=float, help="vmoe: expert capacity ratio C, tokens each expert takes = "
                               "round(k*C*tokens/experts) per image; < 1 drops the least "
                               "confidently routed tokens, less compute (default 1.05)")

    def __post_init__(self):
        if not self.inputs:
            raise ConfigError("--input: give at least one glob")
        try:
            family = registry.parse(self.model, workload="label").family
        except ValueError as err:
            raise ConfigError(f"--model: {err}") from None
        self._check_zero_shot(family)
        self._check_queries(family)
        if self.capacity_ratio is not None:
            if family != "vmoe":
                raise ConfigError(f"--capacity-ratio: only vmoe models take it "
                                  f"(--model is {family})")
            check_range(self, "capacity_ratio", 0.0, low_open=True)
        if family == "gemini" and not self.prompt:
            raise ConfigError("--model gemini:MODEL needs --prompt, the question asked of every "
                              "image, e.g. 'Describe this image in one sentence.'")
        for name in ("batch_size", "max_pixels", "max_file_bytes", "bucket_shards", "rows_per_shard", "top_k"):
            check_range(self, name, 1)
        check_range(self, "flush_seconds", 0.0, low_open=True)
        for name in ("resolution", "max_decode_len"):
            if getattr(self, name) is not None:
                check_range(self, name, 1)
        if self.run_id is None:  # frozen: the derived default is set once, here
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
            object.__setattr__(self, "run_id", stamp)

    def _check_zero_shot(self, family: str) -> None:
        """--classes/--classes-file/--embeddings belong to siglip/lit, which need one of them,
        and to vit/mixer, which may take them."""
        given = [flag for flag, value in (("--classes", self.classes),
                                          ("--classes-file", self.classes_file),
                                          ("--embeddings", self.embeddings)) if value]
        if family in CLASSIFIER_FAMILIES:  # all optional: labels.txt names the classes
            if self.classes and self.classes_file:
                raise ConfigError("--classes and --classes-file: give one of them, not both")
            if self.classes:
                parse_class_names(self.classes, "--classes")
            return
        if family not in ZERO_SHOT_FAMILIES:
            if given:
                raise ConfigError(f"{given[0]}: only siglip, lit, vit, mixer and vmoe models "
                                  f"take it (--model is {family})")
            return
        if not given:
            raise ConfigError(f"--model {family}: give --classes, --classes-file or --embeddings")
        if self.classes and self.classes_file:
            raise ConfigError("--classes and --classes-file: give one of them, not both")
        if self.prompt and "{}" not in self.prompt:
            raise ConfigError(f"--prompt: {family} prompts are class templates with {{}}, "
                              f"e.g. 'a photo of a {{}}.' (got {self.prompt!r})")
        if self.classes:
            parse_class_names(self.classes, "--classes")

    def _check_queries(self, family: str) -> None:
        """--queries belongs to owlvit, which needs it (there --prompt is a template with {})."""
        if family != "owlvit":
            if self.queries:
                raise ConfigError(f"--queries: only owlvit models take it (--model is {family})")
            return
        if not self.queries:
            raise ConfigError("--model owlvit: give --queries, the texts to detect, e.g. "
                              "--queries 'car ; roof ; pool'")
        self.query_names()
        if self.prompt and "{}" not in self.prompt:
            raise ConfigError(f"--prompt: owlvit prompts are query templates with {{}}, e.g. "
                              f"'a photo of a {{}}' (got {self.prompt!r})")
        check_range(self, "min_score", 0.0, 1.0)
        check_range(self, "max_boxes", 1)

    def query_names(self) -> tuple[str, ...]:
        """The texts of --queries ('a ; b ; c'); () without it."""
        return parse_class_names(self.queries, "--queries", separator=";") if self.queries else ()

    def class_names(self) -> tuple[str, ...]:
        """The classes of --classes, or read from --classes-file (local or gs://); () if neither.

        Raises:
            ConfigError: the file is missing, empty or names a class twice.
        """
        if self.classes or not self.classes_file:
            return parse_class_names(self.classes, "--classes") if self.classes else ()
        from tessera import fileio
        if not fileio.exists(self.classes_file):
            raise ConfigError(f"--classes-file: {self.classes_file} does not exist")
        text = fileio.read_bytes(self.classes_file).decode("utf-8")
        return parse_class_names(text, "--classes-file", separator=None)


def parse_class_names(text: str, flag: str, separator: str | None = ",") -> tuple[str, ...]:
    """'cat, dog,,car' -> ('cat', 'dog', 'car'); `separator=None` splits lines (a classes file).

    Raises:
        ConfigError: no names, or a name given twice (the message names `flag`).
    """
    parts = text.splitlines() if separator is None else text.split(separator)
    names = tuple(p.strip() for p in parts if p.strip())
    if not names:
        raise ConfigError(f"{flag}: no class names given")
    twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    if twice:
        raise ConfigError(f"{flag}: class names given twice: {', '.join(twice)}")
    return names
