"""Every python block in the README runs, and prints what its comments say it prints."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import PYDANTIC_AI_UNAVAILABLE

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```(\w[\w-]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
EXPECTED_OUTPUT = re.compile(r"^\s*print\(.*\)\s+# (.+)$", re.MULTILINE)
NOT_RUN = {"bash", "text", "json", "console"}  # commands, signatures and captured output


def blocks() -> list[tuple[str, str]]:
    found = BLOCK.findall(README.read_text())
    unknown = {lang for lang, _ in found} - NOT_RUN - {"python"}
    assert not unknown, f"README has code blocks of unknown kind {unknown}: make them runnable"
    return [(f"block{i}", code) for i, (lang, code) in enumerate(found) if lang == "python"]


@pytest.mark.parametrize(("name", "code"), blocks(), ids=[name for name, _ in blocks()])
async def test_readme_block_runs_and_prints_what_it_says(name: str, code: str, tmp_path: Path) -> None:
    if PYDANTIC_AI_UNAVAILABLE and "pydantic_ai" in code:
        pytest.skip("this block uses pydantic-ai, which needs Python 3.11+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
    expected = EXPECTED_OUTPUT.findall(code)
    if expected:
        assert stdout.decode().strip().splitlines()[-len(expected) :] == expected
