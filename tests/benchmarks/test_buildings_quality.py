"""benchmarks/buildings_quality.py reports the thresholds it scored with, not the flags as typed."""
import json
import os
import subprocess
import sys

from tessera.models import unet

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "buildings_quality.py")


def run(tmp_path, *flags):
    model = unet.write_tiny(str(tmp_path))
    with open(unet.card_path(model), "w") as f:
        json.dump({"threshold": 0.4, "min_confidence": 0.3}, f)
    out = tmp_path / "quality.json"
    subprocess.run([sys.executable, SCRIPT, "--model", model, "--seeds", "5000", "--size", "64",
                    "--output-json", str(out), *flags], check=True, capture_output=True)
    return json.loads(out.read_text())


def test_the_cards_thresholds_are_recorded_when_no_flag_is_given(tmp_path):
    result = run(tmp_path)
    assert (result["threshold"], result["min_confidence"]) == (0.4, 0.3)


def test_a_flag_overrides_the_card_in_the_record(tmp_path):
    result = run(tmp_path, "--min-confidence", "0.7")
    assert (result["threshold"], result["min_confidence"]) == (0.4, 0.7)
