"""OpenTelemetry: hits, coalesced calls and keys are recorded on pydantic-ai's request spans."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings

from agentcache import AgentCache
from agentcache.pydantic_ai import CacheCapability, CachedModel
from tests.pydantic_ai.helpers import Scripted


def instrumented(model: Any, *capabilities: Any) -> tuple[Agent[None, str], InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Instrumentation(settings=InstrumentationSettings(tracer_provider=provider))
    agent = Agent(model, capabilities=[tracing, *capabilities])
    return agent, exporter


def request_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]


async def test_a_miss_then_a_hit_are_marked_on_the_request_spans(cache: AgentCache) -> None:
    agent, exporter = instrumented(CachedModel(Scripted().model(), cache=cache))
    await agent.run("hi")
    await agent.run("hi")
    miss, hit = request_spans(exporter)
    assert miss.attributes["agentcache.hit"] is False
    assert hit.attributes["agentcache.hit"] is True
    assert miss.attributes["agentcache.coalesced"] is False
    key = miss.attributes["agentcache.key"]
    assert key == hit.attributes["agentcache.key"]
    assert key.startswith("default:v1:")


async def test_streamed_requests_are_marked_too(cache: AgentCache) -> None:
    agent, exporter = instrumented(CachedModel(Scripted().model(), cache=cache))
    for _ in range(2):
        async with agent.run_stream("hi") as result:
            await result.get_output()
    assert [s.attributes["agentcache.hit"] for s in request_spans(exporter)] == [False, True]


async def test_the_capability_marks_the_spans_as_well(cache: AgentCache) -> None:
    agent, exporter = instrumented(Scripted().model(), CacheCapability(cache))
    await agent.run("hi")
    await agent.run("hi")
    assert [s.attributes.get("agentcache.hit") for s in request_spans(exporter)] == [False, True]
