"""Why did this miss? Fingerprints, nearest entries, cache.explain and replay-mode misses.

The structured key material is real pydantic-ai key material: the integration's ``request_key``
applied to pydantic-ai messages, settings and tool definitions.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from agentcache import AgentCache, CacheMissError
from agentcache.explain import explain, fingerprints, fingerprints_of
from agentcache.keys import normalize, stored_key
from agentcache.pydantic_ai import request_key
from agentcache.stores.memory import MemoryStore
from agentcache.stores.sqlite import SQLiteStore
from agentcache.stores.sqlite._schema import RELATED
from tests.stores.conftest import REDIS_URL, delete_prefix, require_redis


def pai_request(
    *,
    question: str = "What is the capital of France?",
    temperature: float = 0.0,
    city_schema: dict[str, Any] | None = None,
    model: str = "openai:gpt-4o",
) -> dict[str, Any]:
    """Key material of one pydantic-ai model request, from real pydantic-ai objects."""
    messages = [
        ModelRequest(parts=[SystemPromptPart("You are a terse geography tutor."), UserPromptPart(question)]),
        ModelResponse(parts=[TextPart("Let me check.")]),
        ModelRequest(parts=[UserPromptPart("Answer in one word.")]),
    ]
    schema = city_schema or {"type": "object", "properties": {"city": {"type": "string"}}}
    parameters = ModelRequestParameters(
        function_tools=[
            ToolDefinition(name="lookup", description="Look a city up.", parameters_json_schema=schema)
        ]
    )
    settings: ModelSettings = {"temperature": temperature, "max_tokens": 200}
    return request_key(messages, settings, parameters, model_id=model)


async def answer(key: object) -> str:
    return "Paris"


@pytest.fixture(params=["memory", "sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param != "redis":
        yield "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/cache.db"
        return
    require_redis()
    prefix = f"agentcache-explain-test:{uuid.uuid4().hex[:12]}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    asyncio.run(delete_prefix(prefix))


# -- the fingerprints ------------------------------------------------------------------------


def family(material: Any) -> str:
    return fingerprints_of(material)["family"]


def conversation(material: Any) -> str | None:
    return fingerprints_of(material).get("conversation")


def test_requests_differing_in_sampling_settings_share_both_fingerprints() -> None:
    assert fingerprints_of(pai_request()) == fingerprints_of(pai_request(temperature=0.7))


def test_requests_differing_in_a_tool_schema_share_both_fingerprints() -> None:
    other = {"type": "object", "properties": {"name": {"type": "string"}}}
    assert fingerprints_of(pai_request()) == fingerprints_of(pai_request(city_schema=other))


def test_requests_to_another_model_share_only_the_conversation() -> None:
    other = pai_request(model="anthropic:claude-sonnet-4-5")
    assert conversation(pai_request()) == conversation(other)
    assert family(pai_request()) != family(other)


def test_a_changed_last_message_shares_only_the_family() -> None:
    one = {"model": "m", "messages": ["system", "question one"]}
    two = {"model": "m", "messages": ["system", "question two"]}
    assert family(one) == family(two)
    assert conversation(one) != conversation(two)


def test_a_changed_earlier_message_shares_no_fingerprint() -> None:
    other = pai_request(question="What is the capital of Peru?")
    assert family(pai_request()) != family(other)
    assert conversation(pai_request()) != conversation(other)


def test_a_plain_prompt_has_no_fingerprints() -> None:
    assert fingerprints_of("hello") == {}
    assert fingerprints(normalize(["a", "b"])) == {}


def test_calls_of_one_cached_function_share_a_family() -> None:
    one = {"fn": "m.summarise", "args": {"text": "a"}}
    assert family(one) == family({"fn": "m.summarise", "args": {"text": "b"}})
    assert family(one) != family({"fn": "m.translate", "args": {"text": "a"}})
    assert conversation(one) is None


# -- cache.explain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path", "shown"),
    [
        ({"temperature": 0.7}, "settings.temperature", "0 -> 0.7"),
        ({"question": "What is the capital of Spain?"}, "messages[0].parts[1].content", "Spain"),
        (
            {"city_schema": {"type": "object", "properties": {"city": {"type": "integer"}}}},
            "parameters.function_tools[0].parameters_json_schema.properties.city.type",
            '"string" -> "integer"',
        ),
    ],
)
async def test_explain_names_the_one_path_that_differs(
    url: str, change: dict[str, Any], path: str, shown: str
) -> None:
    store = MemoryStore() if url == "memory://" else url
    async with AgentCache(store) as cache:
        await cache.get_or_call(pai_request(), answer)
        await cache.get_or_call(pai_request(model="openai:gpt-4o-mini", temperature=1.0), answer)
        result = await cache.explain(pai_request(**change))
    assert result.stored is None
    best = result.nearest[0]
    assert best.key == cache.key(pai_request())
    assert best.changes is not None
    assert [c.path for c in best.changes] == [path]
    assert shown in result.render()


async def test_explaining_a_stored_key_says_it_is_stored(url: str) -> None:
    store = MemoryStore() if url == "memory://" else url
    async with AgentCache(store) as cache:
        await cache.get_or_call(pai_request(), answer)
        result = await cache.explain(pai_request())
    assert result.stored is not None
    assert "stored   yes (live" in result.render()


async def test_a_prompt_miss_is_explained_from_the_newest_entries(url: str) -> None:
    store = MemoryStore() if url == "memory://" else url
    async with AgentCache(store) as cache:
        await cache.get_or_call("Summarise the report on sales in Europe.", answer)
        await cache.get_or_call({"fn": "x", "args": {}}, answer)  # not a prompt: not comparable
        result = await cache.explain("Summarise the report on sales in Asia.")
    assert result.searched == "recent"
    assert len(result.nearest) == 1
    assert "Europe" in result.render()
    assert "Asia" in result.render()


async def test_entries_without_key_material_are_counted_but_not_diffed(url: str) -> None:
    store = MemoryStore() if url == "memory://" else url
    async with AgentCache(store, store_key_material=False) as cache:
        await cache.get_or_call(pai_request(), answer)
        result = await cache.explain(pai_request(temperature=0.5))
    assert result.searched == "related"
    assert result.without_material == 1
    assert result.nearest[0].changes is None
    assert "stored without key material" in result.render()


async def test_an_empty_namespace_explains_that_nothing_is_near(url: str) -> None:
    store = MemoryStore() if url == "memory://" else url
    async with AgentCache(store) as cache:
        await cache.get_or_call(pai_request(), answer, namespace="other")
        result = await cache.explain(pai_request())
    assert result.nearest == ()
    assert "nearest  none" in result.render()


# -- replay mode -----------------------------------------------------------------------------


async def test_a_replay_miss_carries_the_nearest_recorded_key_and_the_diff(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    async with AgentCache(url) as cache:
        await cache.get_or_call(pai_request(), answer)
        recorded = cache.key(pai_request())

    async def must_not_run(key: object) -> str:
        raise AssertionError("replay mode called upstream")

    async with AgentCache(url, mode="replay") as cache:
        with pytest.raises(CacheMissError) as caught:
            await cache.get_or_call(pai_request(temperature=0.7), must_not_run)
    message = str(caught.value)
    assert message.startswith(f"replay mode: no recorded entry for {cache.key(pai_request(temperature=0.7))}")
    assert f"nearest  {recorded}" in message
    assert "settings.temperature: 0 -> 0.7" in message
    assert caught.value.explanation is not None


async def test_a_replay_miss_on_an_empty_store_still_raises_readably() -> None:
    async with AgentCache("memory://", mode="replay") as cache:
        with pytest.raises(CacheMissError, match="nearest  none"):
            await cache.get_or_call("never recorded", answer)


# -- the index keeps explain from scanning ---------------------------------------------------


async def test_sqlite_finds_the_family_by_index_beyond_the_scanned_window(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    clock = iter(range(1_000_000, 2_000_000))
    async with AgentCache(url, clock=lambda: float(next(clock))) as cache:
        await cache.get_or_call(pai_request(), answer)  # the oldest entry
        for i in range(30):
            await cache.get_or_call(f"unrelated prompt {i}", answer)
    store = SQLiteStore(tmp_path / "cache.db")
    try:
        normal = normalize(pai_request(temperature=0.9))
        key = stored_key(pai_request(temperature=0.9), "default")
        result = await explain(store, key, normal, scan_limit=5)  # the scan would not reach it
    finally:
        await store.aclose()
    assert result.searched == "related"
    assert [c.path for c in result.nearest[0].changes or ()] == ["settings.temperature"]


@pytest.mark.parametrize("facet", ["family", "conversation"])
def test_the_fingerprint_lookups_use_an_index(tmp_path: Path, facet: str) -> None:
    async def create() -> None:
        store = SQLiteStore(tmp_path / "cache.db")
        await store.open()
        await store.aclose()

    asyncio.run(create())
    conn = sqlite3.connect(tmp_path / "cache.db")
    plan = conn.execute(f"EXPLAIN QUERY PLAN {RELATED[facet]}", ("default", "f", 5)).fetchall()
    conn.close()
    assert f"USING INDEX entries_by_{facet}" in " ".join(str(row[-1]) for row in plan)


def single_turn(question: str, temperature: float = 0.0) -> dict[str, Any]:
    return {
        "model": "openai:gpt-4o",
        "messages": [{"role": "user", "content": question}],
        "settings": {"temperature": temperature},
    }


async def test_the_same_conversation_is_found_in_a_family_too_large_to_compare(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    clock = iter(range(1_000_000, 2_000_000))
    async with AgentCache(url, clock=lambda: float(next(clock))) as cache:
        await cache.get_or_call(single_turn("case 0"), answer)  # the oldest member
        for i in range(1, 40):  # a single-turn eval suite: one family
            await cache.get_or_call(single_turn(f"case {i}"), answer)
    assert len({fingerprints_of(single_turn(f"case {i}"))["family"] for i in range(40)}) == 1
    store = SQLiteStore(tmp_path / "cache.db")
    try:
        wanted = single_turn("case 0", temperature=0.3)
        result = await explain(
            store, stored_key(wanted, "default"), normalize(wanted), family_limit=10, scan_limit=10
        )
    finally:
        await store.aclose()
    assert result.nearest[0].key == stored_key(single_turn("case 0"), "default")
    assert [c.path for c in result.nearest[0].changes or ()] == ["settings.temperature"]


async def test_a_changed_question_is_found_through_the_family(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    async with AgentCache(url) as cache:
        await cache.get_or_call(single_turn("Summarise the report on Europe."), answer)
        for i in range(20):
            await cache.get_or_call(f"an unrelated prompt {i}", answer)
    store = SQLiteStore(tmp_path / "cache.db")
    try:
        wanted = single_turn("Summarise the report on Asia.")
        result = await explain(store, stored_key(wanted, "default"), normalize(wanted), scan_limit=5)
    finally:
        await store.aclose()
    assert result.searched == "related"
    assert [c.path for c in result.nearest[0].changes or ()] == ["messages[0].content"]


async def test_explanation_json_lists_changes(url: str) -> None:
    store = MemoryStore() if url == "memory://" else url
    async with AgentCache(store) as cache:
        await cache.get_or_call(pai_request(), answer)
        result = await cache.explain(pai_request(temperature=0.2))
    data = json.loads(json.dumps(result.to_json()))
    assert data["nearest"][0]["changes"] == [
        {"path": "settings.temperature", "kind": "changed", "old": 0, "new": 0.2}
    ]
    assert data["stored"] is False
    assert time.time() - data["nearest"][0]["created_at"] < 60


class Req(BaseModel):
    model: str
    messages: list[str]


@pytest.mark.parametrize(
    "material",
    [
        pai_request(),
        {"model": "m", "messages": ("a", "b", "c"), "settings": {"t": 1.0}},
        {"model": "m", "history": ["a", {"b": (1, 2)}]},
        {"model": "m", "messages": {"not": "a list"}},
        {"$odd": 1, "model": "m", "messages": ["a", "b"]},
        {"fn": "mod.f", "args": {"x": 1}},
        {"messages": [b"bytes", 1.0, Req(model="x", messages=["y"])], "model": Req(model="a", messages=[])},
        Req(model="m", messages=["a", "b"]),
    ],
)
def test_the_fast_fingerprints_equal_those_of_the_normal_form(material: Any) -> None:
    assert fingerprints_of(material) == fingerprints(normalize(material))


async def test_an_agent_run_that_misses_in_replay_says_which_setting_changed(tmp_path: Path) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from agentcache.pydantic_ai import CachedModel

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("Paris")])

    url = f"sqlite:///{tmp_path}/cache.db"
    model = FunctionModel(respond, model_name="scripted")
    async with AgentCache(url) as cache:
        agent = Agent(CachedModel(model, cache=cache), instructions="Answer in one word.")
        await agent.run("Capital of France?", model_settings={"temperature": 0.0})
    async with AgentCache(url, mode="replay") as replay:
        agent = Agent(CachedModel(model, cache=replay), instructions="Answer in one word.")
        assert (await agent.run("Capital of France?", model_settings={"temperature": 0.0})).output == "Paris"
        with pytest.raises(CacheMissError) as caught:
            await agent.run("Capital of France?", model_settings={"temperature": 0.9})
    assert "settings.temperature: 0 -> 0.9" in str(caught.value)
    assert "differs  1 path(s)" in str(caught.value)
