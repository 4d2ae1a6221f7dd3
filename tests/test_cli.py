"""`tessera --help` lists every workload, and each workload documents its flags."""
import importlib
import subprocess
import sys

import pytest

from pipelines import cli


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


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "workloads:" in out.stdout
