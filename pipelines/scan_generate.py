"""`tessera scan-generate`: the SCAN data set (Lake & Baroni 2018) from its grammar, with derivations.

Writes the 20,910 commands in the official line format `IN: <command> OUT: <actions>` and, next to
it, a JSONL file with `{index, input, output, derivation}` per example (the input `tessera mcd-split
--dataset FILE` takes). Lines are in grammar order, so indices are stable across runs.

Local:
    tessera scan-generate --output out/scan/tasks.txt
    # also writes out/scan/tasks.jsonl; choose it with --derivations out/scan/scan.jsonl

Dataflow (the generation is tiny; this mainly shows that the paths may be on GCS):
    tessera scan-generate --output gs://BUCKET/scan/tasks.txt \
        --runner DataflowRunner --project P --region R --temp_location gs://BUCKET/tmp \
        --setup_file ./setup.py
"""
from __future__ import annotations

import json
import sys

import apache_beam as beam

from tessera import fileio
from tessera.config import ConfigError, to_dict
from tessera.pipelines import common
from tessera.transforms.core import outputs
from tessera.transforms.mcd import scan as mcd_scan
from tessera.transforms.mcd.config import ScanGenerateConfig
from tessera.transforms.core.progress import LogProgress

N_CHUNKS = 16
PROG = "tessera scan-generate"


def chunk_examples(chunk: int, n_chunks: int = N_CHUNKS):
    """The examples whose generation index falls in `chunk` (index modulo n_chunks), indexed."""
    for index, example in enumerate(mcd_scan.examples()):
        if index % n_chunks == chunk:
            yield {"index": index, **example}


def _write_sorted(records: list[dict], text_path: str, jsonl_path: str) -> list[str]:
    records = sorted(records, key=lambda r: r["index"])
    fileio.atomic_write_text(text_path, "".join(
        mcd_scan.format_line(r["input"], r["output"].split()) + "\n" for r in records))
    fileio.atomic_write_text(jsonl_path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return [text_path, jsonl_path]


def build(pipeline: beam.Pipeline, config: ScanGenerateConfig):
    """Generate (in parallel chunks) -> gather -> write both files in index order -> manifest."""
    examples = (pipeline
                | "Chunks" >> beam.Create(list(range(N_CHUNKS)))
                | "Generate" >> beam.FlatMap(chunk_examples)
                | "Progress" >> LogProgress("scan_generate", "examples", every=5000))
    written = (examples
               | "Gather" >> beam.combiners.ToList()
               | "WriteFiles" >> beam.FlatMap(_write_sorted, config.output, config.derivations))
    return {"examples": examples, "files": written} | "Finalize" >> outputs.FinalizeOutput(
        config.manifest_dir, workload="scan-generate", config=to_dict(config))


def main(argv: list[str] | None = None) -> int:
    common.setup_logging()
    try:
        config, options = common.parse_config(PROG, __doc__, ScanGenerateConfig, argv)
    except ConfigError as err:
        return common.input_error(PROG, err)
    common.run_pipeline(build, config, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
