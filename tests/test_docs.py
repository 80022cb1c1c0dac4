"""Every block of README.md and docs/ runs: Python prints what its comments say; shell commands work.

Python blocks run in a fresh interpreter in an empty folder, and each ``print(...)  # expected``
comment is checked against what the block printed. Shell blocks are checked command by command:
``agentcache`` commands are run against a filled store (``test_docs_cli.py``); ``make`` targets
must exist and expand (``make -n``: running ``make test`` inside ``make test`` would recurse, and
``.ci/run`` runs ``make demo`` and ``make test`` themselves); ``pip install "agentcache[extra]"``
must name an extra of ``pyproject.toml`` whose requirements are installed here; ``python -m
pytest`` commands must collect. Any other command fails until it gets a checker here.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_blocks import PAGES, ROOT, RUN, SHOWN, Block, blocks
from tests.helpers import PYDANTIC_AI_UNAVAILABLE

EXPECTED_OUTPUT = re.compile(r"^\s*print\(.*\)\s+# (.+)$", re.MULTILINE)
README_MAX_BYTES = 8 * 1024  # about two screens


def test_every_block_is_of_a_known_kind() -> None:
    unknown = {f"{b.where} ({b.lang})" for b in blocks() if b.lang not in RUN | SHOWN}
    assert not unknown, f"blocks of unknown kind (make them python or bash, or captured text): {unknown}"


@pytest.mark.parametrize("block", blocks("python"), ids=lambda b: b.where)
async def test_python_block_runs_and_prints_what_it_says(block: Block, tmp_path: Path) -> None:
    if PYDANTIC_AI_UNAVAILABLE and "pydantic_ai" in block.code:
        pytest.skip("this block uses pydantic-ai, which needs Python 3.11+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        block.code,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, f"{block.where}:\n{stderr.decode()}"
    expected = EXPECTED_OUTPUT.findall(block.code)
    if expected:
        assert stdout.decode().strip().splitlines()[-len(expected) :] == expected, block.where


def shell_commands() -> list[tuple[str, list[str]]]:
    """Each command of every bash block, as argv, named by where it is."""
    found = []
    for block in blocks("bash"):
        for offset, line in enumerate(block.code.splitlines(), 1):
            argv = shlex.split(line, comments=True)
            if argv:
                found.append((f"{block.where}+{offset}", argv))
    return found


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["optional-dependencies"])


def _check_make(argv: list[str]) -> None:
    dry = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True, check=False)
    assert dry.returncode == 0, f"make -n {' '.join(argv[1:])}: {dry.stderr}"


def _check_pip(argv: list[str]) -> None:
    (spec,) = [a for a in argv[2:] if not a.startswith("-")]
    match = re.fullmatch(r"agentcache\[([\w,-]+)\]", spec)
    assert match, f"only agentcache's own extras are documented to install: {spec}"
    extras = _extras()
    dev_extras = [m for r in extras["dev"] for m in re.findall(r"^agentcache\[([\w,-]+)\]", r)]
    tested = {name for group in dev_extras for name in group.split(",")}
    for extra in match.group(1).split(","):
        assert extra in extras, f"pyproject.toml has no extra {extra!r}"
        if extra not in tested:
            continue  # not in the test environment (evals pins another pydantic-ai: see its make target)
        for requirement in extras[extra]:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
            if name != "agentcache":
                importlib.metadata.version(name)  # raises if the documented extra is not installable


def _check_pytest(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *argv[1:], "--collect-only", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("where", "argv"), shell_commands(), ids=[w for w, _ in shell_commands()])
def test_shell_command_works(where: str, argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "agentcache":
        pytest.skip("run against a filled store by test_docs_cli.py")
    elif program == "make":
        _check_make(argv)
    elif program == "pip" and argv[1:2] == ["install"]:
        _check_pip(argv)
    elif program.startswith("python") and argv[1:3] == ["-m", "pytest"]:
        _check_pytest(argv)
    else:
        pytest.fail(f"{where}: no checker for {argv[0]!r}: add one to tests/test_docs.py")


def test_every_agentcache_command_is_run_by_the_cli_test() -> None:
    from tests.test_docs_cli import COMMANDS_PAGE

    elsewhere = [w for w, argv in shell_commands() if argv[0] == "agentcache" and COMMANDS_PAGE.name not in w]
    assert not elsewhere, f"agentcache commands outside {COMMANDS_PAGE.name} are not run: {elsewhere}"


def test_the_readme_fits_on_about_two_screens() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_speaks_of_work_items_or_missing_documents(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for stale in (r"\(issue \d+\)", r"<!-- section:", r"DESIGN §"):
        assert not re.search(stale, text), f"{page.name} mentions {stale!r}"
