"""Streamed requests: stored when complete, replayed as deltas, followed live by concurrent callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import AgentStreamEvent, PartDeltaEvent, TextPartDelta

import agentcache.pydantic_ai._stream as streams
from agentcache import AgentCache
from agentcache.pydantic_ai import CachedModel, request_key
from tests.pydantic_ai.helpers import STREAM_WORDS, Scripted

FULL_TEXT = "".join(STREAM_WORDS)


class Streamed:
    """What one streamed run produced."""

    def __init__(self, deltas: list[str], output: str, messages: list[Any], usage: Any) -> None:
        self.deltas, self.output, self.messages, self.usage = deltas, output, messages, usage


async def stream_deltas(agent: Agent[None, str], prompt: str = "hi") -> Streamed:
    async with agent.run_stream(prompt) as result:
        deltas = [d async for d in result.stream_text(delta=True, debounce_by=None)]
        output = await result.get_output()
    return Streamed(deltas, output, result.all_messages(), result.usage)


def history_material(messages: list[Any]) -> Any:
    """Histories compared as keys see them (timestamps, run ids, usage and metadata aside)."""
    return request_key(messages, None, _params(), model_id="m")["messages"]


def _params() -> Any:
    from pydantic_ai.models import ModelRequestParameters

    return ModelRequestParameters()


async def test_a_replayed_stream_arrives_in_deltas_with_the_same_output_and_history(
    cache: AgentCache,
) -> None:
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache))
    first = await stream_deltas(agent)
    second = await stream_deltas(agent)
    assert llm.stream_calls == 1
    assert first.deltas == STREAM_WORDS
    assert len(second.deltas) > 1  # deltas, not the whole text at once
    assert "".join(second.deltas) == FULL_TEXT
    assert second.output == first.output == FULL_TEXT
    assert history_material(second.messages) == history_material(first.messages)
    assert cache.stats.hits == 1


async def test_replay_serves_run_stream_events_and_event_stream_handlers(
    cache: AgentCache,
) -> None:
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache))
    await stream_deltas(agent)
    text_deltas: list[str] = []

    async def handler(ctx: Any, events: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in events:
            if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                text_deltas.append(event.delta.content_delta)

    result = await agent.run("hi", event_stream_handler=handler)
    assert result.output == FULL_TEXT
    assert text_deltas  # the first word comes in the PartStartEvent, the rest as deltas
    events = []
    async with agent.run_stream_events("hi") as stream:
        events = [e async for e in stream]
    assert any(isinstance(e, PartDeltaEvent) for e in events)
    assert llm.stream_calls == 1


async def test_concurrent_streams_follow_the_leaders_live_events(cache: AgentCache) -> None:
    llm = Scripted()
    llm.gate = asyncio.Event()  # the upstream stops after its first word until the gate opens
    agent = Agent(CachedModel(llm.model(), cache=cache))
    first_words = [asyncio.Event() for _ in range(3)]

    async def consume(got_first: asyncio.Event) -> list[str]:
        async with agent.run_stream("hi") as result:
            deltas = []
            async for delta in result.stream_text(delta=True, debounce_by=None):
                deltas.append(delta)
                got_first.set()
        return deltas

    runs = [asyncio.ensure_future(consume(e)) for e in first_words]
    # Every consumer sees the first word while the upstream call is still held at the gate:
    # followers are fed live, not replayed at the end. (The timeout only turns a hang into a failure.)
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first_words)), timeout=10)
    assert llm.stream_calls == 1
    llm.gate.set()
    results = await asyncio.gather(*runs)
    assert all("".join(r) == FULL_TEXT for r in results)
    assert llm.stream_calls == 1
    assert cache.stats.misses == 1
    assert cache.stats.coalesced == 2


async def test_an_abandoned_stream_is_not_stored(cache: AgentCache) -> None:
    llm = Scripted()
    llm.gate = asyncio.Event()
    agent = Agent(CachedModel(llm.model(), cache=cache))
    async with agent.run_stream("hi") as result:
        async for _ in result.stream_text(delta=True, debounce_by=None):
            break  # the reader leaves after the first word
    assert cache.stats.stores == 0
    assert [k async for k, _ in cache.store.scan()] == []
    llm.gate.set()
    await stream_deltas(agent)
    assert llm.stream_calls == 2


async def test_a_stream_that_fails_midway_is_not_stored(cache: AgentCache) -> None:
    llm = Scripted()
    llm.fail_with = ConnectionError("stream dropped")
    agent = Agent(CachedModel(llm.model(), cache=cache))
    with pytest.raises(ConnectionError, match="stream dropped"):
        await stream_deltas(agent)
    assert cache.stats.stores == 0
    llm.fail_with = None
    again = await stream_deltas(agent)
    assert "".join(again.deltas) == FULL_TEXT
    assert llm.stream_calls == 2


async def test_pace_spaces_the_replayed_deltas(cache: AgentCache, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(streams, "_pause", record)
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache, pace=0.02))
    await stream_deltas(agent)
    assert pauses == []  # a live stream is never paced
    replayed = await stream_deltas(agent)
    assert pauses == [0.02] * (len(replayed.deltas) - 1)


async def test_a_streamed_hit_reports_zero_usage(cache: AgentCache) -> None:
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache))
    first = await stream_deltas(agent)
    second = await stream_deltas(agent)
    assert first.usage.output_tokens > 0
    assert second.usage.output_tokens == 0
    assert cache.stats.saved_output_tokens == first.usage.output_tokens


async def test_streams_with_samples_rotate_like_requests(cache: AgentCache) -> None:
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache, samples=2))
    for _ in range(4):
        await stream_deltas(agent)
    assert llm.stream_calls == 2


async def test_iter_node_streaming_replays_a_hit(cache: AgentCache) -> None:
    llm = Scripted()
    agent = Agent(CachedModel(llm.model(), cache=cache))
    await stream_deltas(agent)
    deltas: list[str] = []
    async with agent.iter("hi") as run:
        async for node in run:
            if Agent.is_model_request_node(node):
                async with node.stream(run.ctx) as stream:
                    async for event in stream:
                        if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                            deltas.append(event.delta.content_delta)
    assert run.result is not None
    assert run.result.output == FULL_TEXT
    assert deltas
    assert llm.stream_calls == 1
