"""The examples run as documented (the demo in its quick form)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def run(script: str, *args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCACHE_")}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_the_demo_second_run_is_all_hits_in_a_fresh_process(tmp_path: Path) -> None:
    out = await run("eval_suite.py", "--quick", cwd=tmp_path)
    warm = next(line for line in out.splitlines() if line.startswith("run 2"))
    assert warm.split()[4] == "0"  # upstream calls
    assert "identical to run 1: yes" in out
    assert (tmp_path / ".agentcache" / "cache.db").is_file()
