"""Where mixtures come from: YAML/JSON files, or a Python registry (like seqio's MixtureRegistry).

`tessera mixture --config FILE` accepts a path to a YAML or JSON file, or `registry:NAME` for a
mixture registered in Python. The registry rejects duplicate names and anything that is not a
`MixtureConfig`, so a typo in a notebook cannot silently replace a mixture everyone trains on.
"""
from __future__ import annotations

import importlib
import json
from typing import Any

import yaml

from tessera import fileio
from tessera.schemas.mixture import MixtureConfig, MixtureConfigError, mixture_config_from_dict

REGISTRY_SCHEME = "registry:"


class MixtureRegistry:
    """Named MixtureConfigs. Class-level, like seqio's: one registry per process."""

    _REGISTRY: dict[str, MixtureConfig] = {}

    @classmethod
    def add(cls, config: MixtureConfig | dict) -> MixtureConfig:
        """Register a mixture (a MixtureConfig, or a dict in the YAML layout)."""
        if isinstance(config, dict):
            config = mixture_config_from_dict(config)
        if not isinstance(config, MixtureConfig):
            raise TypeError(f"MixtureRegistry.add expects a MixtureConfig or dict, got {type(config).__name__}")
        if config.name in cls._REGISTRY:
            raise ValueError(f"mixture {config.name!r} is already registered")
        cls._REGISTRY[config.name] = config
        return config

    @classmethod
    def get(cls, name: str) -> MixtureConfig:
        if name not in cls._REGISTRY:
            raise KeyError(f"no mixture named {name!r}; registered: {sorted(cls._REGISTRY)}")
        return cls._REGISTRY[name]

    @classmethod
    def remove(cls, name: str) -> None:
        cls._REGISTRY.pop(name, None)

    @classmethod
    def names(cls) -> list[str]:
        return sorted(cls._REGISTRY)


def parse_mixture_text(text: str, where: str = "<text>") -> MixtureConfig:
    """Parse YAML (a superset of JSON) into a validated MixtureConfig."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise MixtureConfigError(f"{where}: not valid YAML/JSON: {e}") from None
    try:
        return mixture_config_from_dict(raw)
    except MixtureConfigError as e:
        raise MixtureConfigError(f"{where}: {e}") from None


def load_mixture(spec: str, module_imports: tuple[str, ...] = ()) -> MixtureConfig:
    """`registry:NAME`, or a local / gs:// path to a .yaml, .yml or .json file.

    `module_imports` are Python modules imported first (seqio's `--module_import`): the modules
    that call `MixtureRegistry.add`, so a registered mixture can be named on the command line.
    """
    for module in module_imports:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise MixtureConfigError(f"--module_import {module}: {e}") from None
    if spec.startswith(REGISTRY_SCHEME):
        name = spec[len(REGISTRY_SCHEME):]
        if name not in MixtureRegistry.names():
            raise MixtureConfigError(
                f"no mixture registered as {name!r} (registered: {MixtureRegistry.names() or 'none'}); "
                "pass --module_import MODULE for the module that registers it")
        return MixtureRegistry.get(name)
    if not fileio.exists(spec):
        raise MixtureConfigError(f"mixture config {spec!r} does not exist")
    with fileio.open_read(spec) as f:
        text = f.read().decode("utf-8")
    if spec.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise MixtureConfigError(f"{spec}: not valid JSON: {e}") from None
    return parse_mixture_text(text, where=spec)
