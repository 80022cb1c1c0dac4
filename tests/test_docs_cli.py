"""The command-line page: its commands run, and its sample output is real output."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path

import pytest

from agentcache import AgentCache, CacheMissError
from agentcache.cli import main
from tests.docs_blocks import ROOT, blocks

COMMANDS_PAGE = ROOT / "docs" / "explain.md"


def section_blocks(lang: str) -> list[str]:
    return [block.code for block in blocks(lang, page=COMMANDS_PAGE)]


def request(temperature: float, question: str = "What is the capital of France?") -> dict[str, object]:
    return {
        "model": "openai:gpt-4o",
        "messages": [{"role": "user", "content": question}],
        "settings": {"temperature": temperature},
    }


async def call_model(key: object) -> str:
    return "Paris"


def test_every_command_in_the_readme_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (commands,) = section_blocks("bash")
    url = f"sqlite:///{tmp_path}/cache.db"

    async def fill() -> None:
        async with AgentCache(url) as cache:
            for _ in range(2):
                await cache.get_or_call(request(0.0), call_model, label="researcher")

    asyncio.run(fill())
    monkeypatch.setenv("AGENTCACHE_URL", url)
    (tmp_path / "request.json").write_text(json.dumps(request(0.7)))
    (tmp_path / "ci").mkdir()
    lines = [line for line in commands.splitlines() if line.strip()]
    assert len(lines) >= 5
    for line in lines:
        argv = shlex.split(line, comments=True)
        assert argv[0] == "agentcache"
        assert main(argv[1:]) == 0, (line, capsys.readouterr().err)
    out = capsys.readouterr().out
    assert "settings.temperature: 0 -> 0.7" in out  # the explain line
    assert (tmp_path / "warm.jsonl").exists()
    assert (tmp_path / "ci" / "cache.db").exists()  # the import into a new file


async def test_the_sample_replay_miss_is_what_the_cache_prints(tmp_path: Path) -> None:
    (sample,) = section_blocks("text")
    url = f"sqlite:///{tmp_path}/evals.db"
    async with AgentCache(url) as cache:
        await cache.get_or_call(request(0.0), call_model)
    async with AgentCache(url, mode="replay") as replay:
        with pytest.raises(CacheMissError) as caught:
            await replay.get_or_call(request(0.0, "What is the capital of Peru?"), call_model)

    def mask(text: str) -> str:
        text = re.sub(r"recorded \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", "recorded <time>", text)
        return text.strip()

    assert mask(str(caught.value)) == mask(sample)
