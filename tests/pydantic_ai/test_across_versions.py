"""Recorded with one pydantic-ai, replayed with another: the same requests find the same keys.

Both runs are fresh processes talking to one local fake API (one endpoint, so one key). By default
both use this Python; ``make test-pydantic-ai-range`` sets ``AGENTCACHE_RECORD_PYTHON`` to the
Python of the other end of the supported range, so a suite recorded with pydantic-ai 2.62 is
replayed with the newest and the other way round. A replay that misses raises ``CacheMissError``
with the nearest recorded request and what differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.pydantic_ai.fake_api import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]


def run_suite(python: str, url: str, mode: str, base_url: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGENTCACHE_MODE", None)
    done = subprocess.run(
        [python, "-m", "tests.pydantic_ai.recorded_suite", url, mode, base_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{python} {mode} failed:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def version(python: str) -> tuple[int, ...]:
    code = "import pydantic_ai; print(pydantic_ai.__version__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return tuple(int(n) for n in out.strip().split(".")[:2])


CANONICAL_SYSTEM_SINCE = (2, 63)
"""pydantic-ai 2.63 stamps ``ModelResponse.canonical_system`` (OpenAIProvider always); 2.62 drops
the field when it loads such a response, and then builds the next request of the run without it."""

PROVIDER_RUNS = ("OpenAIChatModel", "OpenAIResponsesModel", "stream")


def test_a_suite_recorded_by_another_process_replays_with_no_request(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    recorder = os.environ.get("AGENTCACHE_RECORD_PYTHON") or sys.executable
    url = f"sqlite:///{tmp_path / 'recorded.db'}"
    recorded = run_suite(recorder, url, "record", fake_openai.base_url)
    sent = fake_openai.count()
    assert sent > 0
    assert recorded["stores"] > 0
    replayed = run_suite(sys.executable, url, "replay", fake_openai.base_url)
    assert fake_openai.count() == sent, "a replay reached the API"
    outputs = replayed["outputs"]
    if version(recorder) >= CANONICAL_SYSTEM_SINCE > version(sys.executable):
        # The one difference between what the two versions send: only the follow-up requests of
        # provider runs miss, and the nearest recorded request differs in canonical_system alone.
        for name in PROVIDER_RUNS:
            differs = outputs.pop(name)["missed, differs in"]
            assert differs, name
            assert all(path.endswith(".canonical_system") for path in differs), differs
            recorded["outputs"].pop(name)
    else:
        assert replayed["hits"] == recorded["stores"]
    assert outputs == recorded["outputs"]  # and no other scenario missed
