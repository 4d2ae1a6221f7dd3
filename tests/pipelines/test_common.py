"""Shared plumbing: Beam flags pass through, counters come back, progress is counted."""
import logging

import apache_beam as beam

from tessera.pipelines.common import make_parser, parse_config, parse_pipeline_args, run_pipeline
from tessera.transforms.buildings.config import BuildingsConfig
from tessera.transforms.core.progress import LogProgress, progress_line


def test_unknown_flags_go_to_beam():
    config, options = parse_config("tessera x", "doc", BuildingsConfig, [
        "--input", "gs://b/*.tif", "--output", "gs://b/o", "--runner", "DataflowRunner", "--project", "p",
        "--region", "r", "--temp_location", "gs://b/tmp", "--setup_file", "./setup.py",
        "--accelerator", "type:nvidia-l4;count:1"])
    assert config.input == "gs://b/*.tif" and config.accelerator == "type:nvidia-l4;count:1"
    opts = options.get_all_options()
    assert opts["runner"] == "DataflowRunner" and opts["project"] == "p"
    assert opts["setup_file"] == "./setup.py" and opts["temp_location"] == "gs://b/tmp"


def _build(pipeline, config):
    return (pipeline | beam.Create(range(config["n"]))
            | LogProgress("test", "seen", every=3)
            | beam.Map(lambda x: x * 2))


def test_run_pipeline_returns_counters(caplog):
    with caplog.at_level(logging.INFO):
        values = run_pipeline(_build, {"n": 7}, beam.options.pipeline_options.PipelineOptions([]))
    assert values["test:seen"] == 7
    assert any("test/seen" in r.getMessage() for r in caplog.records)


def _build_with_total(pipeline, config):
    items = pipeline | "Items" >> beam.Create(range(config["n"]))
    total = items | "Total" >> beam.combiners.Count.Globally()
    return items | LogProgress("test", "seen", every=4, total=total)


def test_progress_with_a_total_logs_share_rate_and_eta(caplog):
    with caplog.at_level(logging.INFO):
        run_pipeline(_build_with_total, {"n": 8}, beam.options.pipeline_options.PipelineOptions([]))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("test/seen")]
    assert lines[-1].startswith("test/seen: 8/8 (100.0%)") and "ETA 0 s" in lines[-1], lines
    assert any(line.startswith("test/seen: 4/8 (50.0%)") and "/s, ETA" in line for line in lines)


def test_progress_line_eta_from_rate():
    assert progress_line("x", 30, 10.0, 90) == "x: 30/90 (33.3%), 3.0/s, ETA 20 s"
    assert progress_line("x", 30, 10.0) == "x: 30, 3.0/s"
    assert progress_line("x", 1, 60.0, 1000).endswith("ETA 16.6 h")


def test_local_runs_default_to_the_fn_api_runner_without_fetching_prism():
    from tessera.pipelines.common import LOCAL_RUNNER  # pylint: disable=import-outside-toplevel
    parser = make_parser("tessera x", "doc")
    _, options = parse_pipeline_args(parser, ["--direct_num_workers", "2"])
    opts = options.get_all_options()
    assert opts["runner"] == LOCAL_RUNNER == "FnApiRunner" and opts["direct_num_workers"] == 2
    _, options = parse_pipeline_args(parser, ["--runner", "DirectRunner"])
    assert options.get_all_options()["runner"] == "DirectRunner"
    values = run_pipeline(_build, {"n": 5}, parse_pipeline_args(parser, [])[1])
    assert values["test:seen"] == 5


def test_setup_logging_shows_info_even_after_an_import_added_a_handler(capsys):
    from tessera.pipelines.common import setup_logging  # pylint: disable=import-outside-toplevel
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        root.handlers[:] = [logging.StreamHandler()]
        root.setLevel(logging.WARNING)
        setup_logging()
        logging.getLogger("tessera.test").info("progress line")
        assert "progress line" in capsys.readouterr().err
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
