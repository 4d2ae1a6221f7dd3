"""Beam stages of `tessera mcd-split`: read examples, extract atoms and weighted compounds.

The pure part (parsing one JSONL line, extracting one example) comes first; the PTransforms that
wrap it are at the bottom. Compound weights need data-set-wide statistics (P(G'|G)), so extraction
is two passes: per-example occurrences -> summed counts (CombineGlobally over sparse dicts) -> per-
example weights with the counts as a side input.
"""
from __future__ import annotations

import json
import zlib
from collections import Counter
from typing import Any, Iterator

import apache_beam as beam

from tessera import fileio
from tessera.schemas.records import DeadLetter
from tessera.transforms.mcd import compounds as cmp
from tessera.transforms.mcd import scan as mcd_scan
from tessera.transforms.core.progress import count

STAGE = "mcd_extract"


class BadExample(ValueError):
    """An input example that cannot be used; `reason` is the dead-letter reason token."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def parse_line(line: str) -> dict:
    """One JSONL line -> example dict. Raises BadExample(malformed_json|not_an_object|...)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadExample("malformed_json", str(err)) from None
    if not isinstance(obj, dict):
        raise BadExample("not_an_object", type(obj).__name__)
    for field in ("input", "output"):
        if not isinstance(obj.get(field), str):
            raise BadExample(f"missing_{field}", f"field {field!r} must be a string")
    return obj


def _as_counts(value: Any, field: str) -> dict[str, float]:
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) and v >= 0
                                       for k, v in value.items()):
        return {k: float(v) for k, v in value.items() if v > 0}
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return {k: float(v) for k, v in Counter(value).items()}
    raise BadExample(f"bad_{field}", f"{field!r} must be a list of strings or a {{name: number}} map")


def extract(index: int, example: dict, max_size: int) -> dict:
    """Atoms and compound occurrences of one example (or its precomputed atoms and compounds).

    Returns `{index, input, output, atoms, occurrences}` (occurrences: [[G, [G', ...]], ...]) for
    examples with a derivation, or `{index, input, output, atoms, compounds}` (final weights) for
    examples that bring their own. Raises BadExample(no_derivation|bad_derivation|...).
    """
    base = {"index": index, "input": example["input"], "output": example["output"]}
    derivation = example.get("derivation")
    if derivation is not None:
        try:
            tree = cmp.flatten(derivation)
        except ValueError as err:
            raise BadExample("bad_derivation", str(err)) from None
        occs = cmp.occurrences(tree, max_size)
        return {**base, "atoms": dict(Counter(tree.labels)),
                "occurrences": [[o.compound, sorted(o.extensions)] for o in occs]}
    if "atoms" in example and "compounds" in example:
        return {**base, "atoms": _as_counts(example["atoms"], "atoms"),
                "compounds": _as_counts(example["compounds"], "compounds")}
    raise BadExample("no_derivation", "need 'derivation', or both 'atoms' and 'compounds'")


def occurrence_counts(record: dict) -> Counter:
    """The sparse counts one example contributes to the data-set-wide P(G'|G) estimates."""
    if "occurrences" not in record:
        return Counter()
    return cmp.occurrence_counts(cmp.Occurrence(g, frozenset(ext)) for g, ext in record["occurrences"])


def weigh(record: dict, probs: dict) -> dict:
    """Replaces an example's occurrences by its compound weights."""
    if "occurrences" not in record:
        return record
    occs = [cmp.Occurrence(g, frozenset(ext)) for g, ext in record["occurrences"]]
    out = {k: v for k, v in record.items() if k != "occurrences"}
    out["compounds"] = cmp.compound_weights(occs, probs)
    return out


def scan_indexed(_start=None) -> Iterator[tuple[int, dict]]:
    """All SCAN examples as (generation index, example): generating them takes ~0.1 s, so one
    task generates and a Reshuffle spreads the (costly) extraction over workers."""
    yield from enumerate(mcd_scan.examples())


def read_indexed_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file, local or gs://; line numbers are the example indices."""
    with fileio.open_read(path) as handle:
        for index, raw in enumerate(handle):
            yield index, raw.decode("utf-8", errors="replace").rstrip("\n")


# ----------------------------------------------------------------------------- Beam wrappers

class _ParseAndExtractFn(beam.DoFn):
    DEAD = "dead_letters"

    def __init__(self, max_size: int):
        self._max_size = max_size

    def process(self, element):
        index, raw = element
        try:
            example = parse_line(raw) if isinstance(raw, str) else raw
            record = extract(index, example, self._max_size)
        except BadExample as err:
            count(STAGE, f"dropped:{err.reason}")
            yield beam.pvalue.TaggedOutput(self.DEAD, DeadLetter(
                key=f"line:{index}", stage=STAGE, reason=err.reason, detail=err.detail[:300]))
            return
        count(STAGE, "examples")
        yield record


class _SumCounts(beam.CombineFn):
    """Sums sparse {key: count} dicts; the result is small (distinct compounds and extensions)."""

    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        out = Counter()
        for acc in accs:
            out.update(acc)
        return out

    def extract_output(self, acc):
        return dict(acc)


def pack_probs(counts: dict) -> bytes:
    """P(G'|G) from the summed counts, as compressed JSON: a side input that Beam's state cache
    sizes in O(1) and a worker parses once, instead of a dict of ~10^5 entries walked per bundle."""
    return zlib.compress(json.dumps(cmp.max_extension_probability(counts)).encode(), 1)


class _WeighFn(beam.DoFn):
    """Per-example compound weights, with the packed P(G'|G) side input parsed once per worker."""

    def setup(self):
        self._key, self._probs = None, None

    def process(self, record, packed: bytes):
        key = (len(packed), hash(packed))
        if key != self._key:
            self._probs, self._key = json.loads(zlib.decompress(packed)), key
        yield weigh(record, self._probs)


class ReadIndexed(beam.PTransform):
    """`scan` (generated) or a JSONL path -> PCollection[(input index, example or line)], spread out."""

    def __init__(self, dataset: str):
        super().__init__()
        self._dataset = dataset

    def expand(self, pipeline):
        if self._dataset == "scan":
            return (pipeline
                    | "Start" >> beam.Create([None])
                    | "GenerateScan" >> beam.FlatMap(scan_indexed)
                    | "SpreadScan" >> beam.Reshuffle())
        return (pipeline
                | "Path" >> beam.Create([self._dataset])
                | "ReadLines" >> beam.FlatMap(read_indexed_lines)
                | "Spread" >> beam.Reshuffle())


class ExtractAtomsAndCompounds(beam.PTransform):
    """PCollection[(index, line-or-example)] -> (weighted examples, dead letters)."""

    def __init__(self, max_size: int = cmp.DEFAULT_MAX_SIZE):
        super().__init__()
        self._max_size = max_size

    def expand(self, indexed):
        parsed = (indexed
                  | "ParseExtract" >> beam.ParDo(_ParseAndExtractFn(self._max_size)).with_outputs(
                      _ParseAndExtractFn.DEAD, main="records"))
        records, dead = parsed.records, parsed[_ParseAndExtractFn.DEAD]
        probs = (records
                 | "OccurrenceCounts" >> beam.Map(occurrence_counts)
                 | "SumCounts" >> beam.CombineGlobally(_SumCounts())
                 | "ExtensionProbs" >> beam.Map(pack_probs))
        weighted = records | "Weigh" >> beam.ParDo(_WeighFn(), beam.pvalue.AsSingleton(probs))
        return weighted, dead
