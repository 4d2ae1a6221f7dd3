"""`tessera label --model gemini:MODEL` against a fake Gemini API on 127.0.0.1 (never the real
service): one answer per image, 429s retried, refusals and blocked answers in errors/, --resume."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tessera.pipelines import label
from tests.faults.killing import REPO

PROMPT = "Describe this image in one sentence."
LOCAL = ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"]


@pytest.fixture(scope="module")
def fake_gemini():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fixtures.fake_gemini", "--flaky",
                             "--max-seconds", "240"], cwd=REPO, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as r:  # noqa: S310 (127.0.0.1 only)
        return json.load(r)


@pytest.fixture
def gemini_env(fake_gemini, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "fake-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_gemini)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return fake_gemini


def _corpus(root) -> dict[str, tuple[int, int]]:
    sizes = {}
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(20, 30), (32, 32), (40, 24), (18, 50)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"img{i}.png")
        sizes[str(root / f"img{i}.png")] = (w, h)
    Image.new("RGB", (16, 16), (255, 0, 0)).save(root / "refused.png")
    Image.new("RGB", (16, 16), (0, 0, 255)).save(root / "blocked.png")
    (root / "garbage.png").write_bytes(b"not an image")
    return sizes


def _rows(out) -> dict[str, str]:
    rows = {}
    for path in glob.glob(os.path.join(out, "labels", "*.parquet")):
        for r in pq.read_table(path, columns=["key", "text", "model"]).to_pylist():
            assert r["model"] == "gemini:gemini-test" and r["key"] not in rows
            rows[r["key"]] = r["text"]
    return rows


def _errors(out) -> dict[str, str]:
    letters = {}
    for path in glob.glob(os.path.join(out, "errors", "*.jsonl")):
        for line in open(path):
            letter = json.loads(line)
            letters[letter["key"]] = letter["reason"]
    return letters


def test_every_image_gets_its_own_answer_and_refusals_go_to_errors(tmp_path, gemini_env):
    (tmp_path / "in").mkdir()
    sizes = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["--input", str(tmp_path / "in" / "*.png"), "--output", str(out), "--model",
            "gemini:gemini-test", "--prompt", PROMPT, "--batch-size", "3", *LOCAL]
    assert label.main(argv) == 0
    rows = _rows(out)
    assert rows == {key: f"{w}x{h} {PROMPT}" for key, (w, h) in sizes.items()}
    errors = _errors(out)
    assert {os.path.basename(k): v for k, v in errors.items()} == {
        "refused.png": "gemini_failed", "blocked.png": "gemini_empty", "garbage.png": "undecodable"}
    stats = _stats(gemini_env)
    assert stats["throttled"] >= 6  # every image sent was throttled once and then retried

    # A killed run lost one shard: --resume asks Gemini again for those images only.
    os.remove(out / "COMPLETED")
    lost = sorted(glob.glob(str(out / "labels" / "*.parquet")))[0]
    n_lost = pq.read_metadata(lost).num_rows
    os.remove(lost)
    before = _stats(gemini_env)["requests"]
    assert label.main(argv + ["--resume"]) == 0
    assert _rows(out) == rows
    assert _stats(gemini_env)["requests"] - before == n_lost  # already seen: no 429 this time


@pytest.mark.parametrize("env, flags, says", [
    ({}, ["--prompt", PROMPT], "set GEMINI_API_KEY (Gemini API) or GOOGLE_CLOUD_PROJECT"),
    ({"GEMINI_API_KEY": "k"}, [], "needs --prompt"),
])
def test_missing_credentials_or_prompt_is_a_one_line_error(tmp_path, monkeypatch, capsys, env, flags, says):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    code = label.main(["--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "o"),
                       "--model", "gemini:gemini-test", *flags])
    assert code == 2 and says in capsys.readouterr().err
