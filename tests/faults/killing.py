"""kill -9 at random moments of a workload's run, then rerun until it finishes.

The moments fall inside the pipeline itself: the clock starts when the run's `_RUNNING.json`
appears (the contract writes it just before the job starts) and the kill lands at a random
fraction of the job time the uninterrupted reference run took. Set TESSERA_FAULT_SEED to replay
other moments; failures print the seed and the moments.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

from tessera.transforms.core.output_dir import COMPLETED, MANIFEST, RUNNING, is_temporary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = int(os.environ.get("TESSERA_FAULT_SEED", "20261206"))
LIMIT_S = 300  # no single run of these small cases comes near this; a hang fails the test


def command(module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", f"tessera.pipelines.{module}", *args]


def _wait_for(path: str, proc: subprocess.Popen, limit_s: float) -> float | None:
    """When this process wrote `path` (a killed run's older copy does not count)."""
    start, launched = time.monotonic(), time.time() - 0.5
    while time.monotonic() - start < limit_s:
        try:
            if os.stat(path).st_mtime >= launched:
                return time.monotonic()
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


@dataclasses.dataclass
class Reference:
    job_s: float  # from _RUNNING.json appearing to the process exiting


def run_reference(cmd: list[str], output: str) -> Reference:
    """An uninterrupted run; returns how long its job part took."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = _wait_for(os.path.join(output, RUNNING), proc, LIMIT_S)
    _, err = proc.communicate(timeout=LIMIT_S)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert started is not None, "the run never wrote _RUNNING.json"
    return Reference(job_s=time.monotonic() - started)


def run_and_kill(cmd: list[str], output: str, fraction: float, ref: Reference) -> str:
    """Start `cmd`, kill -9 its whole process group `fraction` of the reference job time after
    the job starts; returns what happened ('killed' or 'finished first')."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        started = _wait_for(os.path.join(output, RUNNING), proc, LIMIT_S)
        if started is not None:
            time.sleep(max(0.0, started + fraction * ref.job_s - time.monotonic()))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return "killed"
        return "finished first"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def kill_three_times_then_finish(first: list[str], rerun: list[str], output: str,
                                 ref: Reference, salt: str) -> list[tuple[float, str]]:
    """kill -9 the first run and two reruns at random moments, then let a rerun finish."""
    rng = random.Random(f"{SEED}:{salt}")
    moments = []
    for attempt in range(3):
        fraction = rng.uniform(0.05, 0.95)
        moments.append((round(fraction, 3), run_and_kill(first if attempt == 0 else rerun, output,
                                                         fraction, ref)))
    proc = subprocess.run(rerun, cwd=REPO, capture_output=True, timeout=LIMIT_S)
    assert proc.returncode == 0, (f"seed {SEED}, kills at {moments}: "
                                  + proc.stderr.decode()[-3000:])
    return moments


def check_consistent(output: str, owned_globs: list[str]) -> None:
    """COMPLETED is there and its manifest lists exactly the owned files beside it; no
    temporary file, no `_RUNNING.json`."""
    assert os.path.exists(os.path.join(output, COMPLETED))
    assert not os.path.exists(os.path.join(output, RUNNING))
    everything = [p for p in glob.glob(os.path.join(output, "**"), recursive=True) if os.path.isfile(p)]
    assert not [p for p in everything if is_temporary(os.path.relpath(p, output))], everything
    with open(os.path.join(output, MANIFEST)) as f:
        listed = sorted(entry["path"] for entry in json.load(f)["files"])
    on_disk = sorted({os.path.relpath(p, output) for pattern in owned_globs
                      for p in glob.glob(os.path.join(output, pattern), recursive=True)
                      if os.path.isfile(p)})
    assert listed == on_disk


def read_bytes(output: str, pattern: str) -> dict[str, bytes]:
    out = {}
    for path in sorted(glob.glob(os.path.join(output, pattern), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, output)] = f.read()
    return out


def jsonl_records(output: str, pattern: str, fields: tuple[str, ...]) -> list[tuple]:
    """The (sorted) chosen fields of every JSONL record under `output` (dead letters)."""
    rows = []
    for path in glob.glob(os.path.join(output, pattern)):
        with open(path) as f:
            rows += [tuple(json.loads(line).get(k) for k in fields) for line in f if line.strip()]
    return sorted(rows)


def check_rerun_semantics(main, argv, changed_flag, monkeypatch, capsys) -> None:
    """Same command: skipped (no job runs); another config: refused with one line, exit 2."""
    from tessera.pipelines import common  # pylint: disable=import-outside-toplevel
    runs = []
    monkeypatch.setattr(common, "run_pipeline", lambda *a: runs.append(a))
    assert main(argv) == 0 and runs == []
    capsys.readouterr()
    assert main(argv + changed_flag) == 2 and runs == []
    assert "with another config" in capsys.readouterr().err
