"""`tessera mcd-stats`: recompute the atom and compound divergences of any split file.

The split file is CFQ/TFDS-style JSON (`trainIdxs`, `devIdxs`, `testIdxs`). The examples come either
from an `examples.jsonl` written by `tessera mcd-split` (atoms and compound weights per example,
keyed by their `index` field), or from a data set (`scan`, or JSONL with derivations) that is
extracted again here, with indices = input order, exactly as mcd-split does.

Local:
    tessera mcd-stats --split out/scan_mcd_seed0/split.json --examples out/scan_mcd_seed0/examples.jsonl
    tessera mcd-stats --split some/split.json --dataset scan --output out/stats.json

Dataflow:
    tessera mcd-stats --split gs://B/split.json --dataset gs://B/data.jsonl --output gs://B/stats.json \
        --runner DataflowRunner --project P --region R --temp_location gs://B/tmp --setup_file ./setup.py
"""
from __future__ import annotations

import json
import logging
import sys

import apache_beam as beam

from tessera import fileio
from tessera.config import ConfigError
from tessera.pipelines import common
from tessera.transforms.mcd import divergence
from tessera.transforms.mcd import stages as mcd_stages
from tessera.transforms.mcd.config import McdStatsConfig

PROG = "tessera mcd-stats"


def _keyed_example(line: str):
    obj = json.loads(line)
    return obj["index"], obj


SPLIT_KEYS = ("trainIdxs", "devIdxs", "testIdxs")


def load_split(path: str) -> dict:
    """The split file, checked: a JSON object whose trainIdxs (and dev/test) are lists of
    distinct non-negative integers.

    Raises:
        ConfigError: missing, not JSON, or not shaped like a split (the message says how).
    """
    if not fileio.exists(path):
        raise ConfigError(f"--split: {path} does not exist")
    try:
        split = json.loads(fileio.read_bytes(path))
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"--split: {path} is not JSON ({err}); expected "
                          '{"trainIdxs": [...], "devIdxs": [...], "testIdxs": [...]}') from None
    if not isinstance(split, dict) or not isinstance(split.get("trainIdxs"), list):
        raise ConfigError(f"--split: {path} has no trainIdxs list; expected "
                          '{"trainIdxs": [...], "devIdxs": [...], "testIdxs": [...]}')
    seen: set[int] = set()
    for key in SPLIT_KEYS:
        values = split.get(key, [])
        if not isinstance(values, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in values):
            raise ConfigError(f"--split: {key} in {path} must be a list of integers >= 0")
        if seen & set(values) or len(set(values)) != len(values):
            raise ConfigError(f"--split: {path} names an index twice ({key})")
        seen |= set(values)
    return split


def split_stats(records: list[dict], split: dict) -> dict:
    """D_A and D_C of train against dev and test (and dev+test) for a split over indexed records."""
    by_index = {r["index"]: r for r in records}
    missing = [i for key in ("trainIdxs", "devIdxs", "testIdxs") for i in split.get(key, []) if i not in by_index]
    if missing:
        raise ConfigError(f"--split: {len(missing)} indices have no example (first: {missing[:5]}; "
                          f"the examples have indices {min(by_index, default=None)}.."
                          f"{max(by_index, default=None)})")
    pos = {i: n for n, i in enumerate(by_index)}
    atoms = [r["atoms"] for r in by_index.values()]
    comps = [r["compounds"] for r in by_index.values()]
    train = [pos[i] for i in split["trainIdxs"]]
    out = {"sizes": {k: len(split.get(k, [])) for k in ("trainIdxs", "devIdxs", "testIdxs")}}
    for name, key in (("train_test", "testIdxs"), ("train_dev", "devIdxs")):
        if split.get(key):
            out[name] = divergence.split_divergences(atoms, comps, train, [pos[i] for i in split[key]])
    return out


def build(pipeline: beam.Pipeline, config: McdStatsConfig):
    split = load_split(config.split)
    if config.examples:
        records = (pipeline
                   | "ReadExamples" >> beam.io.ReadFromText(config.examples)
                   | "Parse" >> beam.Map(lambda line: _keyed_example(line)[1]))
    else:
        records, _ = (pipeline
                      | "Read" >> mcd_stages.ReadIndexed(config.dataset)
                      | "Extract" >> mcd_stages.ExtractAtomsAndCompounds(config.max_compound_size))
    stats = (records
             | "Gather" >> beam.combiners.ToList()
             | "Stats" >> beam.Map(split_stats, split))
    if config.output:
        output = config.output
        stats | "Write" >> beam.Map(lambda s: fileio.atomic_write_json(output, s))
    stats | "Log" >> beam.Map(lambda s: print(json.dumps(s, indent=2)))
    return stats


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, McdStatsConfig, argv)
        load_split(config.split)
        if config.examples:
            common.require_match("--examples", config.examples)
        elif config.dataset != "scan":
            common.require_match("--dataset", config.dataset)
    except ConfigError as err:
        return common.input_error(PROG, err)
    logging.info("mcd-stats: %s", config)
    return common.run_or_error(PROG, build, config, options)


if __name__ == "__main__":
    sys.exit(main())
