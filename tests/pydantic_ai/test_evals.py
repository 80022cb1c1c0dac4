"""pydantic-evals: each repeat of a case keeps its own answers, re-runs replay them, the report shows it.

Runs wherever pydantic-evals is installed (it pins the pydantic-ai it was released with:
``make test-pydantic-ai-range`` installs it at the oldest end of the range and sets
``AGENTCACHE_REQUIRE_EVALS=1``, which turns a missing pydantic-evals into a failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    import pydantic_evals  # noqa: F401
except ImportError:
    if os.environ.get("AGENTCACHE_REQUIRE_EVALS") == "1":
        raise
    pytest.skip(
        "pydantic-evals is not installed (make test-pydantic-ai-range runs these)", allow_module_level=True
    )

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import override_allow_model_requests
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_evals import Case, Dataset

from agentcache import AgentCache, AgentCacheWarning
from agentcache.pydantic_ai import CacheCapability, CachedModel
from agentcache.pydantic_ai._evals import METRICS, current_run, run_of
from tests.pydantic_ai.fake_api import TOPICS, FakeOpenAI
from tests.test_examples import run as run_example

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str) -> dict[str, Any]:
    """``python -m module args`` in a fresh process; its last line of output, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGENTCACHE_MODE", None)
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def metrics(hits: int = 0, misses: int = 0, coalesced: int = 0) -> dict[str, int]:
    return dict(zip(METRICS, (hits, misses, coalesced), strict=True))


# -- repeats across processes ------------------------------------------------------------------


def test_each_repeat_is_served_its_own_recorded_answer_in_a_fresh_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evals.db'}"
    first = run_module("tests.pydantic_ai.evals_suite", url, "forward")
    assert first["failures"] == {}
    assert first["calls"] == 9  # 3 cases x 3 repeats, the first four at once
    assert first["judge_calls"] == 9
    by_case: dict[str, set[str]] = {}
    for name, run in first["runs"].items():
        by_case.setdefault(run["source"], set()).add(run["output"])
        assert {k: run["metrics"][k] for k in METRICS} == metrics(misses=2), name  # task and judge
        assert run["metrics"]["input_tokens"] == 1000
        assert run["metrics"]["cost"] > 0
    assert all(len(outputs) == 3 for outputs in by_case.values()), by_case  # 3 distinct answers per case

    second = run_module("tests.pydantic_ai.evals_suite", url, "reversed")
    assert second["failures"] == {}
    assert (second["calls"], second["judge_calls"]) == (0, 0)
    assert set(second["runs"]) == set(first["runs"])
    for name, run in second["runs"].items():
        recorded = first["runs"][name]
        assert (run["output"], run["score"]) == (recorded["output"], recorded["score"]), name
        assert {k: run["metrics"][k] for k in METRICS} == metrics(hits=2), name
        # Hits report no usage: nothing replayed adds tokens or cost to the report.
        assert "cost" not in run["metrics"]
        assert "input_tokens" not in run["metrics"]
        assert "output_tokens" not in run["metrics"]


# -- in this process ---------------------------------------------------------------------------


class Counter:
    """A stochastic model: every call answers differently."""

    def __init__(self) -> None:
        self.calls = 0

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        return ModelResponse(parts=[TextPart(f"answer {self.calls}")])


def sea(*names: str, inputs: str | None = None) -> Dataset[str, str, Any]:
    return Dataset(name="sea", cases=[Case(name=n, inputs=inputs or f"About {n}.") for n in names])


async def test_repeat_one_reuses_what_was_recorded_without_repeats(cache: AgentCache) -> None:
    model = Counter()
    agent = Agent(FunctionModel(model.respond), capabilities=[CacheCapability(cache)])
    plain = (await agent.run("About tides.")).output  # recorded outside any evaluation

    async def task(question: str) -> str:
        return (await agent.run(question)).output

    report = await sea("tides").evaluate(task, repeat=3, progress=False)
    by_name = {case.name: case for case in report.cases}
    assert by_name["tides [1/3]"].output == plain
    assert {k: by_name["tides [1/3]"].metrics[k] for k in METRICS} == metrics(hits=1)
    assert by_name["tides [2/3]"].output != plain
    assert {k: by_name["tides [3/3]"].metrics[k] for k in METRICS} == metrics(misses=1)
    assert model.calls == 3
    single = await sea("tides").evaluate(task, progress=False)  # repeat=1: the plain key again
    assert single.cases[0].output == plain
    assert model.calls == 3


async def test_the_key_of_repeat_k_names_k_and_repeat_zero_adds_nothing(cache: AgentCache) -> None:
    seen: list[dict[str, Any]] = []
    cached = CachedModel(FunctionModel(Counter().respond), cache=cache)
    original = cached.request_key

    def spy(*args: Any) -> dict[str, Any]:
        material = original(*args)
        seen.append(material)
        return material

    cached.request_key = spy  # type: ignore[method-assign]
    agent = Agent(cached)

    async def task(question: str) -> str:
        return (await agent.run(question)).output

    await sea("tides").evaluate(task, repeat=3, max_concurrency=1, progress=False)
    assert sorted(m.get("repeat", 0) for m in seen) == [0, 1, 2]
    assert ["repeat" in m for m in seen].count(False) == 1
    plain = {k: v for k, v in seen[0].items() if k != "repeat"}
    assert all({k: v for k, v in m.items() if k != "repeat"} == plain for m in seen)


async def test_identical_requests_of_two_cases_at_once_are_reported_as_coalesced(cache: AgentCache) -> None:
    second_keyed = asyncio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # Held until the other case's identical request is keyed, then a few loop turns for it to
        # join this call (the metrics below fail if it did not).
        await asyncio.wait_for(second_keyed.wait(), 30)
        for _ in range(20):
            await asyncio.sleep(0)
        return ModelResponse(parts=[TextPart("one answer")])

    cached = CachedModel(FunctionModel(slow), cache=cache)
    keyed = cached.request_key

    def counting(*args: Any) -> dict[str, Any]:
        material = keyed(*args)
        counting.calls += 1  # type: ignore[attr-defined]
        if counting.calls == 2:  # type: ignore[attr-defined]
            second_keyed.set()
        return material

    counting.calls = 0  # type: ignore[attr-defined]
    cached.request_key = counting  # type: ignore[method-assign]
    agent = Agent(cached)

    async def task(question: str) -> str:
        return (await agent.run(question)).output

    report = await sea("a", "b", inputs="The same question.").evaluate(task, progress=False)
    counts = sorted(tuple(case.metrics[k] for k in METRICS) for case in report.cases)
    assert counts == [(0, 0, 1), (0, 1, 0)]  # one call, and one caller that shared it


async def test_no_run_is_current_outside_an_evaluation_and_the_task_sees_its_own() -> None:
    assert current_run() is None
    seen: list[tuple[str, object, int]] = []

    async def task(question: str) -> str:
        run = current_run()
        assert run is not None
        seen.append((run.case, run.repeat, run.repeats))
        return question

    await sea("tides", "winds").evaluate(task, repeat=2, progress=False)
    assert sorted(seen) == [("tides", 0, 2), ("tides", 1, 2), ("winds", 0, 2), ("winds", 1, 2)]
    await sea("calm").evaluate(task, progress=False)
    assert seen[-1] == ("calm", 0, 1)
    assert current_run() is None


def test_a_run_name_in_an_unknown_format_is_keyed_by_the_name_with_a_warning() -> None:
    assert (run_of("tides [2/5]", "tides").repeat, run_of("tides [2/5]", "tides").repeats) == (1, 5)
    assert run_of("tides [x] [3/3]", "tides [x]").repeat == 2
    assert run_of("tides", None).repeat == 0
    with pytest.warns(AgentCacheWarning, match="cannot read a repeat index"):
        odd = run_of("tides #2", "tides")
    assert odd.repeat == "tides #2"  # still one key per run, stable across re-runs


MISSING_RUNNER = """
import warnings
warnings.simplefilter("error")
import pydantic_evals.dataset
del pydantic_evals.dataset._run_task_and_evaluators
try:
    import agentcache.pydantic_ai
except Warning as warning:
    print(type(warning).__name__, warning)
"""


def test_a_pydantic_evals_without_the_hook_gets_a_warning_not_silence() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", MISSING_RUNNER], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("AgentCacheWarning agentcache cannot tell the repeats")
    assert "_run_task_and_evaluators" in out


def test_installing_twice_wraps_once() -> None:
    from pydantic_evals import dataset

    from agentcache.pydantic_ai import _evals

    wrapped = dataset._run_task_and_evaluators
    _evals.install()
    assert dataset._run_task_and_evaluators is wrapped
    assert wrapped.__wrapped__.__module__ == "pydantic_evals.dataset"  # type: ignore[attr-defined]


# -- a real provider model class ---------------------------------------------------------------


@pytest.fixture
def chat_model(fake_openai: FakeOpenAI) -> OpenAIChatModel:
    return OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=fake_openai.base_url, api_key="t"))


async def test_an_openai_chat_model_suite_replays_with_requests_forbidden(
    tmp_path: Path, fake_openai: FakeOpenAI, chat_model: OpenAIChatModel
) -> None:
    url = f"sqlite:///{tmp_path / 'evals.db'}"

    async def evaluate(cache: AgentCache) -> dict[str, Any]:
        agent: Agent[None, str] = Agent(chat_model, capabilities=[CacheCapability(cache)])

        @agent.tool_plain
        def research(topic: str) -> str:
            """Look a topic up."""
            return f"notes on {topic}"

        async def task(question: str) -> str:
            return (await agent.run(question)).output

        report = await sea("report", "forecast").evaluate(task, repeat=2, max_concurrency=4, progress=False)
        assert report.failures == []
        return {case.name: (case.output, {k: case.metrics[k] for k in METRICS}) for case in report.cases}

    steps = len(TOPICS) + 1
    with override_allow_model_requests(True):
        async with AgentCache(url) as cache:
            recorded = await evaluate(cache)
    assert fake_openai.count() == 2 * 2 * steps  # 2 cases x 2 repeats, each its own requests
    assert all(m == metrics(misses=steps) for _, m in recorded.values())
    async with AgentCache(url, mode="replay") as cache:  # requests are forbidden (conftest)
        replayed = await evaluate(cache)
    assert fake_openai.count() == 2 * 2 * steps
    assert {name: output for name, (output, _) in replayed.items()} == {
        name: output for name, (output, _) in recorded.items()
    }
    assert all(m == metrics(hits=steps) for _, m in replayed.values())


# -- the CI replay recipe ----------------------------------------------------------------------


async def test_the_evals_replay_example_replays_offline_and_fails_a_changed_prompt(tmp_path: Path) -> None:
    out = await run_example("evals_replay.py", cwd=tmp_path)
    assert "recorded: 6 runs, 6 model calls" in out
    assert "replayed: 6 runs, 0 model calls, same scores: yes, failures: 0" in out
    assert "changed prompt: 6 of 6 runs failed" in out
    assert "CacheMissError: replay mode: no recorded entry for" in out
    assert "instructions" in out.split("changed prompt:", 1)[1]  # the nearest-key diff names it
