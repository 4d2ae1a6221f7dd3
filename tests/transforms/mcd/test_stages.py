"""Extraction stage: the Beam composite gives the same weights as the in-memory pure functions."""
import itertools
import json
import zlib

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from tessera.transforms.mcd import compounds as cmp
from tessera.transforms.mcd import stages as mcd_stages
from tessera.transforms.mcd import scan as mcd_scan

EXAMPLES = list(itertools.islice(mcd_scan.examples(), 0, 20910, 700))  # 30 examples
EXPECTED = cmp.weighted_compounds_of([ex["derivation"] for ex in EXAMPLES], 4)


def _matches_pure_weights(records):
    records = sorted(records, key=lambda r: r["index"])
    assert [r["index"] for r in records] == list(range(len(EXAMPLES)))
    for record, expected in zip(records, EXPECTED):
        assert record["compounds"] == expected
        assert record["atoms"] == cmp.atom_counts(EXAMPLES[record["index"]]["derivation"])


def test_pack_probs_round_trips():
    counts = cmp.occurrence_counts(cmp.occurrences(["C_and", ["S_twice", "V_jump"], "V_walk"], 3))
    packed = mcd_stages.pack_probs(counts)
    assert isinstance(packed, bytes)
    assert json.loads(zlib.decompress(packed)) == cmp.max_extension_probability(counts)


def test_extract_stage_matches_pure_weights():
    with TestPipeline() as p:
        weighted, _ = (p
                       | beam.Create([(i, json.dumps(ex)) for i, ex in enumerate(EXAMPLES)])
                       | mcd_stages.ExtractAtomsAndCompounds(max_size=4))
        assert_that(weighted, _matches_pure_weights)
