"""Plumbing every workload's `main` shares: flags -> config (tessera.config), Beam's flags, running."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Callable

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from tessera import fileio
from tessera.config import ConfigError, add_flags, from_args, to_dict
from tessera.transforms.core import output_dir

BEAM_FLAGS_HELP = (
    "Flags this workload does not know are handed to Beam's PipelineOptions, e.g. "
    "--runner DataflowRunner --project P --region R --temp_location gs://B/tmp "
    "--setup_file ./setup.py (CPU workers), plus --sdk_container_image IMAGE "
    "--accelerator 'type:nvidia-l4;count:1;install-nvidia-driver' for GPU workers.")


def make_parser(prog: str, doc: str | None, beam: bool = True) -> argparse.ArgumentParser:
    """ArgumentParser whose help shows the module docstring (local and Dataflow commands)."""
    return argparse.ArgumentParser(prog=prog, description=doc, epilog=BEAM_FLAGS_HELP if beam else None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


# Without --runner, Beam's DirectRunner first tries its Prism runner, which downloads a binary
# from GitHub at run time (and runs the job on another engine when it can); Tessera's local
# runs use the batch engine the DirectRunner falls back to, directly. --runner still wins.
LOCAL_RUNNER = "FnApiRunner"


def parse_pipeline_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Workload flags via parse_known_args; the rest become PipelineOptions (runner defaults to
    `LOCAL_RUNNER`)."""
    args, beam_args = parser.parse_known_args(argv)
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = LOCAL_RUNNER
    return args, options


def parse_config(prog: str, doc: str | None, config_cls, argv: list[str] | None, *,
                 extra_flags: Callable[[argparse.ArgumentParser], None] | None = None,
                 derive: Callable[[argparse.Namespace], dict] | None = None, beam: bool = True):
    """The one way a command's flags become its config: flags generated from `config_cls`'s
    fields (plus `extra_flags` for inputs the config derives from); for a Beam workload the flags
    it does not know go to Beam's PipelineOptions, for a plain tool (`beam=False`) they are errors.

    `derive(args)` returns the fields computed from such inputs. Returns (config, options), options
    None for a plain tool.

    Raises:
        tessera.config.ConfigError: a value outside what is allowed (the message says what is).
    """
    parser = make_parser(prog, doc, beam)
    add_flags(parser, config_cls)
    if extra_flags is not None:
        extra_flags(parser)
    argv = sys.argv[1:] if argv is None else argv
    if beam:
        args, options = parse_pipeline_args(parser, argv)
    else:
        args, options = parser.parse_args(argv), None
    values = derive(args) if derive is not None else {}
    return from_args(config_cls, args, **values), options


def counters(result) -> dict[str, int]:
    """Committed counter values of a finished pipeline, as {'namespace:name': value}."""
    out: dict[str, int] = {}
    try:
        query = result.metrics().query(MetricsFilter())
    except (NotImplementedError, AttributeError):
        return out
    for c in query["counters"]:
        name = f"{c.key.metric.namespace}:{c.key.metric.name}"
        value = c.committed if c.committed is not None else c.attempted
        out[name] = out.get(name, 0) + int(value or 0)
    return dict(sorted(out.items()))


def run_pipeline(build_fn: Callable[[beam.Pipeline, Any], Any], config: Any,
                 options: PipelineOptions) -> dict[str, int]:
    """Build and run a workload, wait for it, log and return its counters."""
    start = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build_fn(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    values = counters(result)
    logging.info("finished in %.1f s", time.monotonic() - start)
    for name, value in values.items():
        logging.info("  %s = %d", name, value)
    return values


def run_workload(prog: str, build_fn: Callable[[beam.Pipeline, Any], Any], config: Any,
                 options: PipelineOptions, contract: output_dir.OutputContract, *,
                 manifest_config: dict | None = None) -> int:
    """Apply the output-directory contract (skip / refuse / --overwrite / --resume), then run.

    `manifest_config` is the config the workload's manifest records (default: `to_dict(config)`);
    its hash decides whether a finished directory already holds this run. Returns main's exit
    status: 0 (ran or skipped), 2 (the directory cannot take this run; one line on stderr).
    """
    try:
        go = output_dir.prepare(config.output, contract, manifest_config or to_dict(config),
                                overwrite=getattr(config, "overwrite", False),
                                resume=getattr(config, "resume", False))
    except output_dir.OutputDirError as err:
        return input_error(prog, err)
    if go:
        return run_or_error(prog, build_fn, config, options)
    return 0


def run_or_error(prog: str, build_fn: Callable[[beam.Pipeline, Any], Any], config: Any,
                 options: PipelineOptions) -> int:
    """`run_pipeline`, turning a ConfigError raised inside the job (input that only shows as
    wrong once read: no valid example, a split index with no example) into main's one-line
    error and exit status 2. Other failures keep their traceback: they are bugs or outages."""
    try:
        run_pipeline(build_fn, config, options)
    except ConfigError as err:
        return input_error(prog, str(err).split(" [while running")[0])
    return 0


def require_match(flag: str, patterns: str | list[str]) -> None:
    """Fail on the driver, with the flag's name, when an input glob matches no file.

    Raises:
        ConfigError: a pattern matches nothing.
    """
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if not fileio.match_paths(pattern):
            raise ConfigError(f"{flag}: {pattern!r} matches no file")


def input_error(prog: str, message) -> int:
    """Report input that cannot run (bad name, no files, broken config) and give main's exit status 2.

    Printed as `<prog>: <message>` on stderr, the way argparse reports usage errors.
    """
    print(f"{prog}: {message}", file=sys.stderr)
    return 2


def setup_logging(level: int = logging.INFO) -> None:
    # force: by the time a workload's main runs, an import has often put a WARNING-level
    # handler on the root logger, and without it basicConfig would silently do nothing
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax._src", "tensorflow", "apache_beam.runners.portability", "apache_beam.typehints"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_hide_input_error_tracebacks)


def _hide_input_error_tracebacks(record: logging.LogRecord) -> bool:
    """Beam logs every exception a step raises with its traceback; for a ConfigError (input
    that is wrong, found while running) main prints the one line that matters instead."""
    return not (record.exc_info and isinstance(record.exc_info[1], ConfigError))
