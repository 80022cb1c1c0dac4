"""Real provider model classes (OpenAI Chat Completions, Responses, Anthropic) and the keys they get.

Keys are built without a network; the runs go to a local fake of the OpenAI API over real HTTP,
which stamps fresh ids and timestamps on every answer as the real one does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters, override_allow_model_requests
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.instrumented import InstrumentedModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from agentcache import AgentCache
from agentcache.keys import digest
from agentcache.pydantic_ai import CachedModel
from agentcache.pydantic_ai._keys import endpoint
from tests.pydantic_ai.fake_api import TOPICS, FakeOpenAI

LOCAL = "http://127.0.0.1:8000/v1"
OPENAI_CLASSES = [OpenAIChatModel, OpenAIResponsesModel]


def openai(cls: type[Model], base_url: str = LOCAL, api_key: str = "test") -> Any:
    return cls("gpt-4o-mini", provider=OpenAIProvider(base_url=base_url, api_key=api_key))  # type: ignore[call-arg]


Connect = Callable[[type[Model]], Awaitable[Any]]


@pytest.fixture
async def connect(fake_openai: FakeOpenAI) -> AsyncIterator[Connect]:
    """Models of the fake API's endpoint, whose HTTP clients are closed after the test."""
    async with AsyncExitStack() as stack:

        async def connected(cls: type[Model]) -> Any:
            return await stack.enter_async_context(openai(cls, fake_openai.base_url))

        yield connected


def key_of(model: Model) -> str:
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("hi")])]
    cached = CachedModel(model, cache=AgentCache("memory://"))
    return digest(cached.request_key(messages, None, ModelRequestParameters()))


def researcher(model: Model) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(model, instructions="Research each topic, then summarise.")

    @agent.tool_plain
    def research(topic: str) -> str:
        """Look a topic up."""
        return f"notes on {topic}"

    return agent


# -- which API a key names --------------------------------------------------------------------


def test_chat_completions_and_responses_of_one_model_name_have_different_keys() -> None:
    chat, responses = openai(OpenAIChatModel), openai(OpenAIResponsesModel)
    assert chat.model_id == responses.model_id == "openai:gpt-4o-mini"  # what keys used to rest on
    assert key_of(chat) != key_of(responses)


@pytest.mark.parametrize("cls", OPENAI_CLASSES)
def test_two_endpoints_serving_one_model_name_have_different_keys(cls: type[Model]) -> None:
    assert key_of(openai(cls)) != key_of(openai(cls, base_url="https://api.openai.com/v1"))
    assert key_of(openai(cls)) != key_of(openai(cls, base_url="http://127.0.0.1:8001/v1"))


@pytest.mark.parametrize("cls", OPENAI_CLASSES)
def test_credentials_never_change_the_key_nor_reach_the_key_material(cls: type[Model]) -> None:
    plain = openai(cls, api_key="sk-one")
    keyed = openai(cls, base_url="http://bob:hunter2@127.0.0.1:8000/v1/?api-key=sk-two", api_key="sk-three")
    assert key_of(plain) == key_of(keyed)
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("hi")])]
    material = CachedModel(keyed, cache=AgentCache("memory://")).request_key(
        messages, None, ModelRequestParameters()
    )
    assert material["api"] == {"class": cls.__name__, "system": "openai", "endpoint": LOCAL}
    for secret in ("hunter2", "sk-two", "sk-three", "bob"):
        assert secret not in json.dumps(material)


def test_anthropic_models_name_their_own_api() -> None:
    claude = AnthropicModel(
        "claude-sonnet-4-5", provider=AnthropicProvider(api_key="test", base_url="http://127.0.0.1:8000")
    )
    material = CachedModel(claude, cache=AgentCache("memory://")).request_key(
        [ModelRequest(parts=[UserPromptPart("hi")])], None, ModelRequestParameters()
    )
    assert material["model"] == "anthropic:claude-sonnet-4-5"
    assert material["api"] == {
        "class": "AnthropicModel",
        "system": "anthropic",
        "endpoint": "http://127.0.0.1:8000",
    }
    hosted = AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(api_key="test"))
    assert key_of(claude) != key_of(hosted)


def test_wrappers_around_the_provider_model_do_not_change_the_key() -> None:
    chat = openai(OpenAIChatModel)
    assert key_of(InstrumentedModel(chat)) == key_of(chat)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@api.example.com/v1/", "https://api.example.com/v1"),
        ("HTTPS://API.Example.com:443/v1", "https://api.example.com/v1"),
        ("http://127.0.0.1:80/v1", "http://127.0.0.1/v1"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1"),
        (
            "https://x.openai.azure.com/openai/?api-version=2025-01-01&api-key=k",
            "https://x.openai.azure.com/openai?api-version=2025-01-01",
        ),
        (
            "https://g.example/v1?key=k&access_token=t&X-Amz-Signature=s&region=eu",
            "https://g.example/v1?region=eu",
        ),
        ("https://g.example/v1?b=2&a=1#frag", "https://g.example/v1?a=1&b=2"),
        ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
        (None, None),
    ],
)
def test_endpoints_are_keyed_without_credentials_in_one_spelling(
    url: str | None, expected: str | None
) -> None:
    assert endpoint(url) == expected


# -- runs against the local fake API -----------------------------------------------------------


async def test_a_responses_run_is_never_served_a_chat_completions_answer(
    cache: AgentCache, fake_openai: FakeOpenAI, connect: Connect
) -> None:
    with override_allow_model_requests(True):
        chat = await researcher(CachedModel(await connect(OpenAIChatModel), cache=cache)).run("Go")
        responses = await researcher(CachedModel(await connect(OpenAIResponsesModel), cache=cache)).run("Go")
    steps = len(TOPICS) + 1
    assert fake_openai.count("/v1/chat/completions") == steps
    assert fake_openai.count("/v1/responses") == steps  # its own calls, not the chat model's entries
    assert chat.output == responses.output


@pytest.mark.parametrize("cls", OPENAI_CLASSES)
async def test_a_conversation_from_another_live_run_is_served_from_the_cache(
    cache: AgentCache, fake_openai: FakeOpenAI, connect: Connect, cls: type[Model]
) -> None:
    """Two live runs of one conversation differ only in provider ids and timestamps.

    Continuing the first through the cache records every step; continuing the second, the very
    same steps, must be served without a single request, although every tool-call id and (on the
    Responses API) every output-item id (fc_..., msg_...) in its history is different.
    """
    model = await connect(cls)
    with override_allow_model_requests(True):
        first_live = (await researcher(model).run("Weather report")).all_messages()
        second_live = (await researcher(model).run("Weather report")).all_messages()
        recorded = await researcher(CachedModel(model, cache=cache)).run(
            "And tomorrow?", message_history=first_live
        )
    assert first_live != second_live  # fresh ids and timestamps from the API
    before = fake_openai.count()
    # Requests are disallowed now: any miss raises instead of reaching the API.
    replayed = await researcher(CachedModel(model, cache=cache)).run(
        "And tomorrow?", message_history=second_live
    )
    assert fake_openai.count() == before
    assert replayed.output == recorded.output
    assert cache.stats.hits == len(TOPICS) + 1


@pytest.mark.parametrize("cls", OPENAI_CLASSES)
async def test_a_rerun_of_a_multi_step_tool_run_makes_no_request(
    cache: AgentCache, fake_openai: FakeOpenAI, connect: Connect, cls: type[Model]
) -> None:
    model = await connect(cls)
    with override_allow_model_requests(True):
        first = await researcher(CachedModel(model, cache=cache)).run("Weather report")
    calls = fake_openai.count()
    assert calls == len(TOPICS) + 1
    second = await researcher(CachedModel(model, cache=cache)).run("Weather report")
    assert fake_openai.count() == calls
    assert second.output == first.output == "Summary: notes on tides; notes on winds"
    assert second.usage.input_tokens == 0  # hits report no usage


async def test_a_streamed_provider_run_is_replayed_as_a_stream(
    cache: AgentCache, fake_openai: FakeOpenAI, connect: Connect
) -> None:
    agent = researcher(CachedModel(await connect(OpenAIChatModel), cache=cache))

    async def streamed() -> tuple[list[str], str]:
        async with agent.run_stream("Weather report") as result:
            deltas = [d async for d in result.stream_text(delta=True, debounce_by=None)]
            return deltas, await result.get_output()

    with override_allow_model_requests(True):
        live_deltas, live_output = await streamed()
    calls = fake_openai.count()
    assert calls == len(TOPICS) + 1
    assert len(live_deltas) > 1  # the fake streams a word per chunk
    replayed_deltas, replayed_output = await streamed()
    assert fake_openai.count() == calls
    assert replayed_output == live_output == "Summary: notes on tides; notes on winds"
    assert "".join(replayed_deltas) == "".join(live_deltas)
    assert len(replayed_deltas) > 1  # replayed in deltas, not the whole text at once


def test_a_fallback_model_is_keyed_by_the_apis_of_its_models() -> None:
    chat_first = FallbackModel(
        openai(OpenAIChatModel), openai(OpenAIChatModel, base_url="https://api.openai.com/v1")
    )
    responses_first = FallbackModel(
        openai(OpenAIResponsesModel), openai(OpenAIChatModel, base_url="https://api.openai.com/v1")
    )
    assert chat_first.model_id == responses_first.model_id
    assert key_of(chat_first) != key_of(responses_first)
