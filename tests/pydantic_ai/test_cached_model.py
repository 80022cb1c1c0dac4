"""CachedModel and CacheCapability inside real agent runs (FunctionModel, no network)."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters, override_allow_model_requests
from pydantic_ai.models.function import AgentInfo, FunctionModel

import agentcache.pydantic_ai
from agentcache import AgentCache, AgentCacheWarning, CacheMissError, ConfigurationError
from agentcache.pydantic_ai import CacheCapability, CachedModel
from tests.pydantic_ai.helpers import ProviderLike, Scripted, Verdict, tool_agent


async def test_rerun_with_tools_and_structured_output_makes_zero_model_calls(
    cache: AgentCache,
) -> None:
    llm = Scripted()
    agent = tool_agent(CachedModel(llm.model(), cache=cache))
    first = await agent.run("Judge tides.")
    assert llm.calls == 2  # tool call, then the output tool
    second = await agent.run("Judge tides.")
    assert llm.calls == 2
    assert second.output == first.output == Verdict(label="ok", score=7)
    assert cache.stats.hits == 2
    assert cache.stats.misses == 2


async def test_tools_still_execute_on_a_replayed_run(cache: AgentCache) -> None:
    llm = Scripted()
    ran: list[str] = []
    agent: Agent[None, Verdict] = Agent(CachedModel(llm.model(), cache=cache), output_type=Verdict)

    @agent.tool
    def research(ctx: RunContext[None], topic: str) -> str:
        ran.append(topic)
        return f"notes on {topic}"

    await agent.run("Judge tides.")
    await agent.run("Judge tides.")
    assert ran == ["tides", "tides"]
    assert llm.calls == 2


async def test_a_changed_prompt_is_a_miss(cache: AgentCache) -> None:
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache))
    await agent.run("one")
    await agent.run("two")
    assert llm.calls == 2


async def test_each_hit_is_a_fresh_response_object(cache: AgentCache) -> None:
    llm = Scripted()
    model = CachedModel(llm.model(), cache=cache)
    messages: list[Any] = [ModelRequest(parts=[UserPromptPart("hi")])]
    params = ModelRequestParameters()
    await model.request(messages, None, params)
    one = await model.request(messages, None, params)
    two = await model.request(messages, None, params)
    assert one == two
    assert one is not two
    one.parts.append(TextPart("mutated"))
    three = await model.request(messages, None, params)
    assert three.parts == two.parts


async def test_concurrent_callers_of_one_request_each_get_their_own_response(cache: AgentCache) -> None:
    llm = Scripted()
    llm.gate = asyncio.Event()
    arrived = 0
    all_arrived = asyncio.Event()

    class Counting(CachedModel):
        async def request(self, *args: Any) -> ModelResponse:
            nonlocal arrived
            arrived += 1
            if arrived == 5:
                all_arrived.set()
            return await super().request(*args)

    model = Counting(llm.model(), cache=cache)
    messages: list[Any] = [ModelRequest(parts=[UserPromptPart("hi")])]
    requests = [
        asyncio.ensure_future(model.request(messages, None, ModelRequestParameters())) for _ in range(5)
    ]
    await all_arrived.wait()
    llm.gate.set()
    responses = await asyncio.gather(*requests)
    assert llm.calls == 1
    assert len({id(r) for r in responses}) == 5
    assert all(r.parts == [TextPart("plain answer")] for r in responses)
    responses[0].parts.append(TextPart("mutated"))
    assert all(r.parts == [TextPart("plain answer")] for r in responses[1:])


async def test_capability_and_wrapper_build_the_same_keys(cache: AgentCache) -> None:
    llm = Scripted()
    await tool_agent(CachedModel(llm.model(), cache=cache)).run("Judge tides.")
    wrapper_keys = sorted([k async for k, _ in cache.store.scan()])
    await cache.clear()
    await tool_agent(llm.model(), capabilities=[CacheCapability(cache)]).run("Judge tides.")
    capability_keys = sorted([k async for k, _ in cache.store.scan()])
    assert wrapper_keys == capability_keys
    assert len(wrapper_keys) == 2
    calls = llm.calls
    await tool_agent(CachedModel(llm.model(), cache=cache)).run("Judge tides.")
    assert llm.calls == calls  # the wrapper is served what the capability stored


async def test_capability_does_not_wrap_a_model_that_is_already_cached(cache: AgentCache) -> None:
    llm = Scripted()
    model = CachedModel(llm.model(), cache=cache)
    assert CacheCapability(cache).get_wrapper_model(model) is None


async def test_fifty_concurrent_identical_runs_make_one_model_call_per_step(
    cache: AgentCache,
) -> None:
    llm = Scripted()
    llm.gate = asyncio.Event()
    arrived = 0
    all_arrived = asyncio.Event()

    class Counting(CachedModel):
        async def request(self, *args: Any) -> ModelResponse:
            nonlocal arrived
            arrived += 1
            if arrived == 50:
                all_arrived.set()  # every earlier caller has joined the flight synchronously
            return await super().request(*args)

    agent = tool_agent(Counting(llm.model(), cache=cache))
    runs = [asyncio.ensure_future(agent.run("Judge tides.")) for _ in range(50)]
    await all_arrived.wait()
    llm.gate.set()
    results = await asyncio.gather(*runs)
    assert llm.calls == 2
    assert all(r.output == Verdict(label="ok", score=7) for r in results)
    stats = cache.stats
    assert stats.misses == 2
    assert stats.coalesced >= 49
    assert stats.lookups == 100


async def test_sub_agents_called_from_tools_share_the_cache(cache: AgentCache) -> None:
    llm = Scripted()
    researcher = Agent(CachedModel(llm.model(), cache=cache, label="researcher"))
    planner: Agent[None, str] = Agent(CachedModel(FunctionModel(plan), cache=cache, label="planner"))

    @planner.tool
    async def ask(ctx: RunContext[None], question: str) -> str:
        result = await researcher.run(question, usage=ctx.usage)
        return result.output

    await planner.run("plan")
    calls = llm.calls
    await planner.run("plan")
    assert llm.calls == calls == 2  # two sub-questions, each asked once
    by_label = cache.stats.by_label
    assert by_label["researcher"].hits == 2
    assert by_label["researcher"].misses == 2
    assert by_label["planner"].hits == 2
    assert by_label["planner"].misses == 2


def plan(messages: list[Any], info: AgentInfo) -> ModelResponse:
    from pydantic_ai.messages import ToolCallPart

    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart("ask", {"question": q}) for q in ("tides?", "winds?")])
    return ModelResponse(parts=[TextPart("planned")])


async def test_model_errors_are_never_stored(cache: AgentCache) -> None:
    llm = Scripted()
    llm.fail_with = RuntimeError("provider down")
    agent = Agent(CachedModel(llm.model(), cache=cache))
    with pytest.raises(RuntimeError, match="provider down"):
        await agent.run("hi")
    llm.fail_with = None
    await agent.run("hi")
    assert llm.calls == 2
    assert cache.stats.stores == 1


async def test_an_incomplete_response_is_returned_but_not_stored(cache: AgentCache) -> None:
    def suspended(messages: list[Any], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("working...")], state="incomplete")

    model = CachedModel(FunctionModel(suspended), cache=cache)
    messages: list[Any] = [ModelRequest(parts=[UserPromptPart("hi")])]
    response = await model.request(messages, None, ModelRequestParameters())
    assert response.state == "incomplete"
    assert cache.stats.stores == 0
    assert [k async for k, _ in cache.store.scan()] == []


async def test_a_hit_reports_zero_usage_and_records_what_it_saved(cache: AgentCache) -> None:
    llm = Scripted()
    agent = tool_agent(CachedModel(llm.model(), cache=cache, label="judge"))
    first = await agent.run("Judge tides.")
    second = await agent.run("Judge tides.")
    spent = first.usage
    assert (spent.input_tokens, spent.output_tokens) == (2000, 1000)
    assert spent.cost is not None
    assert spent.cost > 0
    assert second.usage.input_tokens == 0
    assert second.usage.output_tokens == 0
    assert second.usage.requests == 2
    replayed = [m for m in second.new_messages() if isinstance(m, ModelResponse)]
    assert replayed[0].metadata is not None
    info = replayed[0].metadata["agentcache"]
    assert info["source"] == "l1"
    assert info["saved_usage"] == {"input_tokens": 1000, "output_tokens": 500}
    stats = cache.stats
    assert stats.saved_input_tokens == 2000
    assert stats.saved_output_tokens == 1000
    assert stats.saved_cost == pytest.approx(float(spent.cost))
    assert stats.by_label["judge"].saved_cost == pytest.approx(float(spent.cost))


async def test_hit_usage_replay_keeps_the_stored_usage(cache: AgentCache) -> None:
    llm = Scripted()
    agent = tool_agent(CachedModel(llm.model(), cache=cache, hit_usage="replay"))
    first = await agent.run("Judge tides.")
    second = await agent.run("Judge tides.")
    assert second.usage.input_tokens == first.usage.input_tokens == 2000
    assert second.usage.cost == first.usage.cost


async def test_samples_fill_their_slots_then_rotate(cache: AgentCache) -> None:
    llm = Scripted(vary=True)
    agent = Agent(CachedModel(llm.model(), cache=cache, samples=3))
    outputs = [(await agent.run("roll")).output for _ in range(7)]
    assert llm.calls == 3
    assert outputs == ["answer #1", "answer #2", "answer #3"] * 2 + ["answer #1"]


async def test_samples_one_is_the_plain_key(cache: AgentCache) -> None:
    llm = Scripted(vary=True)
    await Agent(CachedModel(llm.model(), cache=cache)).run("roll")
    sampled = Agent(CachedModel(llm.model(), cache=cache, samples=2))
    assert (await sampled.run("roll")).output == "answer #1"  # slot 0 reuses the entry
    assert (await sampled.run("roll")).output == "answer #2"
    assert llm.calls == 2


@pytest.mark.parametrize(
    "options",
    [{"hit_usage": "sometimes"}, {"samples": 0}, {"samples": 1.5}, {"pace": -1}],
)
async def test_bad_options_are_rejected_when_built(cache: AgentCache, options: Any) -> None:
    with pytest.raises(ConfigurationError):
        CachedModel(Scripted().model(), cache=cache, **options)
    with pytest.raises(ConfigurationError):
        CacheCapability(cache, **options)


async def test_replay_mode_proves_a_run_made_no_model_request() -> None:
    """CI recipe: a recorded cache, mode='replay', provider requests disallowed (conftest)."""
    llm = Scripted()
    async with AgentCache("memory://") as recording:
        with override_allow_model_requests(True):  # recording is the only time the API is used
            await Agent(CachedModel(ProviderLike(llm), cache=recording)).run("hi")
        async with AgentCache(recording.store, mode="replay") as replay:
            agent = Agent(CachedModel(ProviderLike(llm), cache=replay))
            result = await agent.run("hi")  # ProviderLike raises if it is asked
            assert result.output == "plain answer"
            with pytest.raises(CacheMissError):
                await agent.run("never recorded")
    assert llm.calls == 1


async def test_without_the_cache_the_guard_really_refuses() -> None:
    with pytest.raises(RuntimeError, match="ALLOW_MODEL_REQUESTS"):
        await Agent(ProviderLike(Scripted())).run("hi")


SCRIPT = """
import asyncio, sys
sys.path.insert(0, {root!r})
from agentcache import AgentCache
from agentcache.pydantic_ai import CachedModel
from tests.pydantic_ai.helpers import Scripted, tool_agent

async def main():
    llm = Scripted()
    async with AgentCache({url!r}) as cache:
        result = await tool_agent(CachedModel(llm.model(), cache=cache)).run("Judge tides.")
    print(llm.calls, result.output.score)

asyncio.run(main())
"""


def test_a_fresh_process_reruns_with_zero_model_calls(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    script = SCRIPT.format(root=root, url=f"sqlite:///{tmp_path / 'agents.db'}")
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(run.stdout.split())
    assert outputs == [["2", "7"], ["0", "7"]]


async def test_responses_are_stored_as_model_responses_through_the_value_type(cache: AgentCache) -> None:
    llm = Scripted()
    model = CachedModel(llm.model(), cache=cache)
    messages: list[Any] = [ModelRequest(parts=[UserPromptPart("hi")])]
    params = ModelRequestParameters()
    answer = await model.request(messages, None, params)
    stored = await cache.get(model.request_key(messages, None, params), value_type=ModelResponse)
    assert isinstance(stored, ModelResponse)
    assert stored.parts == answer.parts == [TextPart("plain answer")]
    assert stored.usage == answer.usage


async def test_a_stored_response_of_another_message_format_is_a_miss_that_leaves_the_entry(
    cache: AgentCache,
) -> None:
    llm = Scripted()
    model = CachedModel(llm.model(), cache=cache)
    messages: list[Any] = [ModelRequest(parts=[UserPromptPart("hi")])]
    params = ModelRequestParameters()
    material = model.request_key(messages, None, params)
    # What another pydantic-ai version sharing this store might have written for the same request.
    other_format = {"kind": "response", "parts": [{"part_kind": "hologram", "beams": 3}], "state": "later"}
    await cache.set(material, other_format)
    for calls in (1, 2):
        with pytest.warns(AgentCacheWarning):
            response = await model.request(messages, None, params)
        assert response.parts == [TextPart("plain answer")]
        assert llm.calls == calls  # a miss for this version, every time
    assert await cache.get(material) == other_format  # neither deleted nor overwritten


def test_the_integration_uses_only_the_public_cache_api() -> None:
    package = Path(agentcache.pydantic_ai.__file__).parent
    private_uses = []
    for source in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and "cache" in ast.unparse(node.value).lower()
            ):
                private_uses.append(f"{source.name}:{node.lineno}: {ast.unparse(node)}")
    assert private_uses == []
