"""pydantic-ai is an optional extra: agentcache works without it, and says what to install."""

from __future__ import annotations

import subprocess
import sys

BLOCK_PYDANTIC_AI = "import sys; sys.modules['pydantic_ai'] = None  # as if not installed\n"


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_PYDANTIC_AI + code], capture_output=True, text=True)


def test_agentcache_imports_without_pydantic_ai() -> None:
    done = run("import agentcache; print(agentcache.AgentCache.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "AgentCache"


def test_the_integration_names_the_extra_to_install() -> None:
    done = run("import agentcache.pydantic_ai")
    assert done.returncode != 0
    assert 'pip install "agentcache[pydantic-ai]"' in done.stderr
    # Where the extra cannot be installed, the message says which Python it needs.
    assert ("Python 3.11 or later" in done.stderr) is (sys.version_info < (3, 11)), done.stderr


def test_importing_agentcache_does_not_import_pydantic_ai() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, agentcache; print('pydantic_ai' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "False", done.stderr
