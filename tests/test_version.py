"""The version: one literal in agentcache/_version.py, read by packaging, the package and the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import agentcache
from agentcache._version import __version__
from agentcache.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_says_its_version() -> None:
    assert agentcache.__version__ == __version__ == "0.2.0"


def test_packaging_reads_the_version_from_the_one_literal() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "agentcache._version.__version__"}


def test_importing_agentcache_does_not_look_up_distribution_metadata() -> None:
    code = "import sys, agentcache; print(agentcache.__version__, 'importlib.metadata' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == [__version__, "False"]


def test_the_command_prints_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"agentcache {__version__}\n"


def test_python_dash_m_agentcache_prints_its_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentcache", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"agentcache {__version__}\n")


def test_the_version_needs_no_cli_extra() -> None:
    code = (
        "import sys; sys.modules['click'] = None; sys.modules['rich'] = None\n"
        "from agentcache.cli import main\n"
        "sys.exit(main(['--version']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"agentcache {__version__}\n")
