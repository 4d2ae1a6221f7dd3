"""Records and configuration of an image-text pretraining mixture (`tessera mixture`).

A mixture names its sources (files of `id, image, prefix, suffix` records), their weights, the
filters, the deduplication and decontamination settings, and the output layout. Everything is
validated when the config is built, so a bad weight or a missing field fails before any worker
starts, with a message that says which source and which field.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import pyarrow as pa

MIXTURE_SCHEMA_VERSION = "1.0.0"
SOURCE_FORMATS = ("parquet", "jsonl", "tfrecord")
OUTPUT_FORMATS = ("tfrecord", "parquet")
WEIGHT_SUM_TOLERANCE = 1e-3  # weights must sum to 1 within this, unless normalize_weights is set

# Output columns / tf.train.Example features, in the order they are written.
TFRECORD_FEATURES = ("image/encoded", "prefix", "suffix", "source", "id")

MIXTURE_ARROW_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("image", pa.binary()),
    ("prefix", pa.string()),
    ("suffix", pa.string()),
    ("source", pa.string()),
], metadata={"tessera.mixture.schema_version": MIXTURE_SCHEMA_VERSION})


class MixtureConfigError(ValueError):
    """A mixture config that cannot be run; the message names the offending field."""


@dataclasses.dataclass(frozen=True)
class MixtureRecord:
    """One image-text example. `image` holds the encoded bytes (PNG, JPEG, ...)."""
    id: str
    image: bytes
    prefix: str
    suffix: str
    source: str

    def to_row(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    min_side: int = 0             # drop images whose shorter side is below this many pixels
    max_aspect: float = 0.0       # drop images with long/short side above this; 0 disables
    max_suffix_chars: int = 0     # drop targets longer than this; 0 disables


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    exact: bool = True                      # drop identical (image, prefix, suffix) within a source
    near_image_hamming: int | None = None   # drop images within this pHash distance within a source


@dataclasses.dataclass(frozen=True)
class DecontamConfig:
    eval: tuple[str, ...] = ()              # globs of evaluation images
    near_image_hamming: int = 10


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """One input of the mixture. `weight=None` means: derive from sizes with the temperature."""
    name: str
    path: str
    format: str
    weight: float | None = None
    prefix: str | None = None     # default task prompt for records that carry none
    near_dedup: bool = True       # set False for sources with many questions per image (VQA)

    def __post_init__(self):
        where = f"source {self.name!r}"
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise MixtureConfigError(f"source name must be a non-empty string without '/': {self.name!r}")
        if not isinstance(self.path, str) or not self.path:
            raise MixtureConfigError(f"{where}: 'path' must be a non-empty glob")
        if self.format not in SOURCE_FORMATS:
            raise MixtureConfigError(f"{where}: format {self.format!r} is not one of {SOURCE_FORMATS}")
        if self.weight is not None:
            if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
                raise MixtureConfigError(f"{where}: weight must be a number, got {self.weight!r}")
            if not math.isfinite(self.weight) or self.weight < 0:
                raise MixtureConfigError(f"{where}: weight must be finite and >= 0, got {self.weight!r}")
        if self.prefix is not None and not isinstance(self.prefix, str):
            raise MixtureConfigError(f"{where}: prefix must be a string, got {self.prefix!r}")


@dataclasses.dataclass(frozen=True)
class MixtureConfig:
    name: str
    sources: tuple[SourceConfig, ...]
    seed: int = 0
    total_examples: int | None = None
    num_shards: int = 16
    format: str = "tfrecord"
    temperature: float = 1.0
    normalize_weights: bool = False
    filters: FilterConfig = FilterConfig()
    dedup: DedupConfig = DedupConfig()
    decontaminate: DecontamConfig = DecontamConfig()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise MixtureConfigError("mixture 'name' must be a non-empty string")
        if not self.sources:
            raise MixtureConfigError(f"mixture {self.name!r} has no sources")
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise MixtureConfigError(f"mixture {self.name!r}: duplicate source names {dupes}")
        if self.format not in OUTPUT_FORMATS:
            raise MixtureConfigError(f"format {self.format!r} is not one of {OUTPUT_FORMATS}")
        _check_int("seed", self.seed, minimum=0)
        _check_int("num_shards", self.num_shards, minimum=1)
        if self.total_examples is not None:
            _check_int("total_examples", self.total_examples, minimum=1)
        if not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
            raise MixtureConfigError(f"temperature must be > 0, got {self.temperature!r}")
        given = [s.weight is not None for s in self.sources]
        if any(given) and not all(given):
            missing = [s.name for s in self.sources if s.weight is None]
            raise MixtureConfigError(
                f"weights given for some sources but not for {missing}: give all or none "
                "(none = weights from sizes and temperature)")
        if all(given):
            total = sum(s.weight for s in self.sources)
            if total <= 0:
                raise MixtureConfigError("weights sum to 0: at least one source needs a positive weight")
            if not self.normalize_weights and abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                raise MixtureConfigError(
                    f"weights sum to {total:g}, not 1 (tolerance {WEIGHT_SUM_TOLERANCE}): fix them, "
                    "or set normalize_weights: true to rescale them")
        _check_int("filters.min_side", self.filters.min_side, minimum=0)
        _check_int("filters.max_suffix_chars", self.filters.max_suffix_chars, minimum=0)
        if not isinstance(self.filters.max_aspect, (int, float)) or self.filters.max_aspect < 0:
            raise MixtureConfigError(f"filters.max_aspect must be >= 0, got {self.filters.max_aspect!r}")
        if self.dedup.near_image_hamming is not None:
            _check_int("dedup.near_image_hamming", self.dedup.near_image_hamming, minimum=0, maximum=31)
        _check_int("decontaminate.near_image_hamming", self.decontaminate.near_image_hamming,
                   minimum=0, maximum=31)

    def source(self, name: str) -> SourceConfig:
        return next(s for s in self.sources if s.name == name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_int(field: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MixtureConfigError(f"{field} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise MixtureConfigError(f"{field} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise MixtureConfigError(f"{field} must be <= {maximum}, got {value}")


def _build(cls, raw: Any, where: str):
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise MixtureConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MixtureConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**raw)
    except TypeError as e:  # a required field is missing
        raise MixtureConfigError(f"{where}: {e}") from None


def mixture_config_from_dict(raw: Mapping[str, Any]) -> MixtureConfig:
    """Build and validate a MixtureConfig from plain data (parsed YAML or JSON)."""
    if not isinstance(raw, Mapping):
        raise MixtureConfigError(f"a mixture config must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    sources_raw = raw.pop("sources", None)
    if not isinstance(sources_raw, (list, tuple)) or not sources_raw:
        raise MixtureConfigError("mixture config needs a non-empty 'sources' list")
    for i, s in enumerate(sources_raw):
        if isinstance(s, Mapping):
            missing = [f for f in ("name", "path", "format") if f not in s]
            if missing:
                raise MixtureConfigError(f"sources[{i}] is missing field(s) {missing}")
    sources = tuple(_build(SourceConfig, s, f"sources[{i}]") for i, s in enumerate(sources_raw))
    decontam = raw.pop("decontaminate", None)
    if isinstance(decontam, Mapping) and "eval" in decontam:
        decontam = dict(decontam)
        globs = decontam["eval"]
        decontam["eval"] = (globs,) if isinstance(globs, str) else tuple(globs or ())
    nested = {
        "filters": _build(FilterConfig, raw.pop("filters", None), "filters"),
        "dedup": _build(DedupConfig, raw.pop("dedup", None), "dedup"),
        "decontaminate": _build(DecontamConfig, decontam, "decontaminate"),
    }
    return _build(MixtureConfig, {**raw, "sources": sources, **nested}, "mixture")
