"""`tessera --help` lists every workload, and each workload documents its flags."""
import importlib
import subprocess
import sys

import pytest

from tessera.pipelines import cli


def test_help_lists_every_workload(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in cli.WORKLOADS:
        assert name in text


def test_unknown_workload_fails_clearly(capsys):
    assert cli.main(["no-such-thing"]) == 2
    assert "unknown workload" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.WORKLOADS))
def test_workload_help(name, capsys):
    module = importlib.import_module(cli.WORKLOADS[name][0])
    assert callable(module.main)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_installed_entry_point_runs_a_workload(tmp_path):
    """The `tessera` console script that setup.py installs (not `python -m`): help, a real
    workload run from outside the repository, and the exit code of bad input."""
    import os
    exe = os.path.join(os.path.dirname(sys.executable), "tessera")
    assert os.path.exists(exe), "setup.py's console_scripts entry point is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "workloads:" in out.stdout
    out = subprocess.run([exe, "scan-generate", "--output", str(tmp_path / "scan" / "tasks.txt")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "scan" / "COMPLETED").exists()
    assert len((tmp_path / "scan" / "tasks.txt").read_text().splitlines()) == 20910
    out = subprocess.run([exe, "mixture", "--config", str(tmp_path / "missing.yaml"),
                          "--output", str(tmp_path / "m")], capture_output=True, text=True)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
