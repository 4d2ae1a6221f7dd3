"""One config style for every workload: a frozen dataclass whose fields carry their own flags.

Each workload states its settings once, as a frozen dataclass (in `transforms/<workload>/config.py`,
so stages can read it without importing `pipelines/`). A field's default, help text, flag name and
choices live in its `setting(...)` metadata, so the command line, the defaults and the manifest
cannot drift apart; `__post_init__` validates, raising `ConfigError` with what is allowed.

    add_flags(parser, BuildingsConfig)         # --tile-size, --threshold, ... from the fields
    config = from_args(BuildingsConfig, args)  # validated; ConfigError on a bad value
    to_dict(config)                            # what the manifest records and hashes
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Iterable

_MISSING = dataclasses.MISSING


ACCELERATOR_HELP = ("Beam resource hint for the model stage only, e.g. "
                    "'type:nvidia-l4;count:1;install-nvidia-driver'. Default: none (CPU).")


OVERWRITE_HELP = ("replace a finished output directory whose config differs (every file the "
                  "previous run owned is removed first); without it such a directory is refused, "
                  "and one finished with the same config is left as it is")
RESUME_HELP = "continue an interrupted run in the same --output (same flags), skipping finished work"


class ConfigError(ValueError):
    """A setting outside what is allowed; the message names the flag and what it accepts."""


def setting(default: Any = _MISSING, *, help: str = "", flag: str | None = None,  # noqa: A002
            choices: Iterable | None = None, type: Callable | None = None,  # noqa: A002
            cli: bool = True, manifest: bool = True, metavar: str | None = None,
            default_factory: Callable | None = None) -> Any:
    """A dataclass field with its command-line face.

    Args:
      default: the one place the default is stated (omit for a required flag).
      help: the flag's help text.
      flag: the flag name when it differs from `--field-name`.
      choices, type, metavar: as for argparse (type defaults to the default's type).
      cli: False for settings a workload computes or only tests set.
      manifest: False for settings that do not change the result (--overwrite, --resume):
        they are left out of the manifest's config and its hash.
    """
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None,
                "type": type, "cli": cli, "manifest": manifest, "metavar": metavar}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _cli_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True) and f.init]


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls) -> None:
    """One argparse flag per `setting` of `cls`, its default read from the field.

    bool fields become switches (`--x`, or `--x/--no-x` when the default is True); tuple fields
    take the flag repeatedly; a field without a default is a required flag.
    """
    for f in _cli_fields(cls):
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.get("help") or None}
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else _MISSING)
        if default is _MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
        elif _is_tuple(f):
            kwargs["action"] = "append"
            kwargs["default"] = None
            kwargs["type"] = meta.get("type") or str
        else:
            kwargs["type"] = meta.get("type") or _scalar_type(f, default)
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar") or meta.get("flag"):  # a renamed flag shows its own name
                kwargs["metavar"] = meta.get("metavar") or flag_name(f).lstrip("-").replace("-", "_").upper()
        parser.add_argument(flag_name(f), **kwargs)


def _annotation(field: dataclasses.Field) -> str:
    return field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")


def _is_tuple(field: dataclasses.Field) -> bool:
    return isinstance(field.default, tuple) or _annotation(field).startswith("tuple")


def _scalar_type(field: dataclasses.Field, default: Any) -> Callable:
    if default is not _MISSING and default is not None:
        return type(default)
    text = _annotation(field)
    for name, fn in (("int", int), ("float", float)):
        if text.startswith(name):
            return fn
    return str


def from_args(cls, args: argparse.Namespace, **values):
    """The validated config from parsed flags; `values` set the fields a workload computes."""
    kwargs = {}
    for f in _cli_fields(cls):
        value = getattr(args, f.name)
        if isinstance(value, list):
            value = tuple(value)
        elif value is None and _is_tuple(f):  # a repeatable flag never given: the field's default
            value = f.default if f.default is not _MISSING else ()
        kwargs[f.name] = value
    kwargs.update(values)
    return cls(**kwargs)


def to_dict(config) -> dict:
    """The settings that define the result (for the manifest and its config hash)."""
    out = {}
    for f in dataclasses.fields(config):
        if not f.metadata.get("manifest", True):
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition` holds."""
    if not condition:
        raise ConfigError(message)


def check_range(config, name: str, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """`config.name` within [low, high] (ends open where asked); the message names the flag."""
    value = getattr(config, name)
    field = next(f for f in dataclasses.fields(config) if f.name == name)
    ok = value is not None
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("> " if low_open else ">= ") + f"{low:g}"
        hi = "" if high is None else ("< " if high_open else "<= ") + f"{high:g}"
        allowed = " and ".join(x for x in (lo, hi) if x)
        raise ConfigError(f"{flag_name(field)} must be {allowed} (got {value!r})")
