"""request_key: what makes two model requests the same, pinned by golden values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic_ai.messages import (
    CachePoint,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from agentcache.keys import digest, stored_key
from agentcache.pydantic_ai import KEY_SCHEMA, request_key

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SCHEMA = {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}


class Unserialisable:
    """Tool metadata may hold live objects; they are never sent, so never keyed."""


def history(
    *,
    at: datetime = T0,
    run_id: str = "run-1",
    conversation_id: str = "conv-1",
    call_id: str = "pyd_ai_0a1b2c",
    question: str = "When is high tide?",
) -> list[ModelMessage]:
    return [
        ModelRequest(
            parts=[
                SystemPromptPart("You are a harbour master.", timestamp=at),
                UserPromptPart(question, timestamp=at),
            ],
            instructions="Answer briefly.",
            timestamp=at,
            run_id=run_id,
            conversation_id=conversation_id,
        ),
        ModelResponse(
            parts=[ToolCallPart("research", {"topic": "tides", "timestamp": "kept"}, call_id)],
            usage=RequestUsage(input_tokens=50, output_tokens=5),
            model_name="gpt-4o-mini",
            timestamp=at,
            run_id=run_id,
            conversation_id=conversation_id,
            provider_response_id=f"resp-{run_id}",
        ),
        ModelRequest(
            parts=[ToolReturnPart("research", "high tide at noon", call_id, timestamp=at)],
            instructions="Answer briefly.",
            timestamp=at,
            run_id=run_id,
            conversation_id=conversation_id,
        ),
    ]


def tool(**changes: Any) -> ToolDefinition:
    base = ToolDefinition(
        name="research",
        parameters_json_schema=SCHEMA,
        description="Look a topic up.",
        metadata={"client": Unserialisable()},
        timeout=5.0,
    )
    return replace(base, **changes)


def parameters(**changes: Any) -> ModelRequestParameters:
    base = ModelRequestParameters(
        function_tools=[tool()],
        output_mode="text",
        revealed_tool_names={"research", "archive", "weather"},
    )
    return replace(base, **changes)


def with_first(**changes: Any) -> list[ModelMessage]:
    messages = history()
    messages[0] = replace(messages[0], **changes)
    return messages


SETTINGS: dict[str, Any] = {"temperature": 0.2, "seed": 7, "max_tokens": 400, "timeout": 30}
MODEL = "openai:gpt-4o-mini"


def key(
    messages: list[ModelMessage] | None = None,
    settings: dict[str, Any] | None = None,
    params: ModelRequestParameters | None = None,
    model_id: str = MODEL,
) -> str:
    material = request_key(
        history() if messages is None else messages,
        SETTINGS if settings is None else settings,  # type: ignore[arg-type]
        parameters() if params is None else params,
        model_id=model_id,
    )
    return digest(material)


# Golden values: a change here means every stored pydantic-ai entry stops matching. Only change
# them together with KEY_SCHEMA.
GOLDEN_DIGEST = "4693fc59c39902d62ca0f3ea7e7ac0ca7bc3dd568641c7b71622b8a19b19940c"
GOLDEN_STORED_KEY = f"default:v1:{GOLDEN_DIGEST}"


def test_golden_key_of_a_tool_calling_request_is_pinned() -> None:
    material = request_key(history(), SETTINGS, parameters(), model_id=MODEL)  # type: ignore[arg-type]
    assert material["schema"] == KEY_SCHEMA == "agentcache.pydantic_ai/2"
    assert digest(material) == GOLDEN_DIGEST
    assert stored_key(material, "default") == GOLDEN_STORED_KEY


def test_golden_key_material_shape_is_pinned() -> None:
    material = request_key(history(), SETTINGS, parameters(), model_id=MODEL)  # type: ignore[arg-type]
    assert material["model"] == MODEL
    assert material["api"] is None  # keyed by model_id alone; a model= also names its API
    assert material["settings"] == {"temperature": 0.2, "seed": 7, "max_tokens": 400}
    first, response, tool_return = material["messages"]
    system_part = {
        "content": "You are a harbour master.",
        "dynamic_ref": None,
        "context_id": None,
        "scope": "conversation",
        "part_kind": "system-prompt",
    }
    assert first == {
        "parts": [system_part, {"content": "When is high tide?", "part_kind": "user-prompt"}],
        "instructions": "Answer briefly.",
        "kind": "request",
        "state": "complete",
    }
    assert response["parts"][0]["tool_call_id"] == "tc0"
    assert response["parts"][0]["args"] == {"topic": "tides", "timestamp": "kept"}
    assert tool_return["parts"][0]["tool_call_id"] == "tc0"
    assert "timestamp" not in tool_return["parts"][0]
    for dropped in ("usage", "provider_response_id", "run_id", "timestamp", "conversation_id"):
        assert dropped not in response
    (tool_def,) = material["parameters"]["function_tools"]
    assert "metadata" not in tool_def
    assert "timeout" not in tool_def
    assert material["parameters"]["revealed_tool_names"] == ["archive", "research", "weather"]
    json.dumps(material)  # plain JSON values only


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: key(messages=history(at=T0 + timedelta(days=3))), id="timestamps"),
        pytest.param(lambda: key(messages=history(run_id="run-2")), id="run-id"),
        pytest.param(lambda: key(messages=history(conversation_id="conv-9")), id="conversation-id"),
        pytest.param(lambda: key(messages=history(call_id="pyd_ai_ffff")), id="tool-call-id"),
        pytest.param(lambda: key(settings={**SETTINGS, "timeout": 99}), id="timeout-setting"),
        pytest.param(
            lambda: key(settings={**SETTINGS, "max_retries": 5, "extra_headers": {"x": "1"}}),
            id="transport-settings",
        ),
        pytest.param(
            lambda: key(params=parameters(function_tools=[tool(metadata=None, timeout=None)])),
            id="tool-metadata-and-timeout",
        ),
        pytest.param(
            lambda: key(settings={"seed": 7, "max_tokens": 400, "temperature": 0.2}),
            id="settings-order",
        ),
    ],
)
def test_per_run_noise_never_changes_the_key(other: Any) -> None:
    assert other() == key()


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: key(model_id="openai:gpt-4o"), id="model"),
        pytest.param(lambda: key(settings={**SETTINGS, "temperature": 0.3}), id="temperature"),
        pytest.param(lambda: key(settings={**SETTINGS, "seed": 8}), id="seed"),
        pytest.param(
            lambda: key(settings={**SETTINGS, "openai_reasoning_effort": "high"}),
            id="provider-setting",
        ),
        pytest.param(lambda: key(messages=history(question="When is low tide?")), id="one-message"),
        pytest.param(
            lambda: key(messages=with_first(instructions="Answer at length.")),
            id="instructions",
        ),
        pytest.param(
            lambda: key(
                params=parameters(function_tools=[tool(parameters_json_schema={**SCHEMA, "required": []})])
            ),
            id="tool-schema",
        ),
        pytest.param(
            lambda: key(params=parameters(function_tools=[tool(description="Other.")])),
            id="tool-description",
        ),
        pytest.param(
            lambda: key(params=parameters(output_mode="tool", allow_text_output=False)),
            id="output-mode",
        ),
        pytest.param(
            lambda: key(params=parameters(output_tools=[tool(name="final_result")])),
            id="output-type",
        ),
    ],
)
def test_a_real_difference_always_changes_the_key(other: Any) -> None:
    assert other() != key()


def test_tool_call_ids_are_renamed_by_first_appearance_keeping_pairs() -> None:
    swapped = history(call_id="a")
    swapped[2] = replace(swapped[2], parts=[ToolReturnPart("research", "high tide at noon", "b")])
    assert key(messages=swapped) != key()  # the return no longer answers the call


def responses_history(*, reasoning: str, call: str, item: str, message: str) -> list[ModelMessage]:
    """A Responses API conversation: every output item carries the provider's id for it."""
    return [
        ModelRequest(parts=[UserPromptPart("When is high tide?", timestamp=T0)]),
        ModelResponse(
            parts=[
                ThinkingPart("Look it up.", id=reasoning, signature="enc", provider_name="openai"),
                ToolCallPart("research", {"topic": "tides"}, call, id=item, provider_name="openai"),
            ],
            provider_name="openai",
        ),
        ModelRequest(parts=[ToolReturnPart("research", "high tide at noon", call, timestamp=T0)]),
        ModelResponse(
            parts=[TextPart("At noon.", id=message, provider_name="openai")], provider_name="openai"
        ),
        ModelRequest(parts=[UserPromptPart("And low tide?", timestamp=T0)]),
    ]


def test_provider_output_item_ids_are_renamed_in_order_of_appearance() -> None:
    run_one = responses_history(reasoning="rs_1a", call="call_1", item="fc_1b", message="msg_1c")
    run_two = responses_history(reasoning="rs_9x", call="call_9", item="fc_9y", message="msg_9z")
    assert key(messages=run_one) == key(messages=run_two)
    material = request_key(run_one, None, ModelRequestParameters(), model_id=MODEL)
    thinking, tool_call = material["messages"][1]["parts"]
    assert (thinking["id"], tool_call["id"], tool_call["tool_call_id"]) == ("id0", "id1", "tc0")
    assert thinking["signature"] == "enc"  # what a reasoning model needs back is kept
    assert material["messages"][3]["parts"][0]["id"] == "id2"


def test_renamed_item_ids_still_say_which_items_are_the_same() -> None:
    distinct = responses_history(reasoning="rs_1", call="call_1", item="fc_1", message="msg_1")
    one_item_twice = responses_history(reasoning="rs_1", call="call_1", item="rs_1", message="msg_1")
    assert key(messages=distinct) != key(messages=one_item_twice)


def test_application_metadata_is_never_keyed() -> None:
    tagged = history()
    tagged[0] = replace(
        tagged[0],
        parts=[replace(tagged[0].parts[0], metadata={"added_by": "harness"}), tagged[0].parts[1]],
        metadata={"trace": "abc"},
    )
    tagged[2] = replace(tagged[2], parts=[replace(tagged[2].parts[0], metadata={"rows": 3})])
    assert key(messages=tagged) == key()


def test_prompt_caching_hints_never_change_the_key() -> None:
    hinted = history()
    prompt = hinted[0].parts[1]
    hinted[0] = replace(
        hinted[0],
        parts=[hinted[0].parts[0], replace(prompt, content=["When is high tide?", CachePoint(ttl="1h")])],
    )
    plain = history()
    plain[0] = replace(plain[0], parts=[plain[0].parts[0], replace(prompt, content=["When is high tide?"])])
    settings = {
        **SETTINGS,
        "cache": True,
        "openai_prompt_cache_key": "tenant-7",
        "anthropic_cache_messages": True,
        "anthropic_cache_instructions": "1h",
    }
    assert key(messages=hinted, settings=settings, params=parameters(cache=True)) == key(messages=plain)


def test_a_provider_url_in_the_history_is_keyed_without_credentials() -> None:
    def answered_by(url: str) -> list[ModelMessage]:
        messages = history()
        messages[1] = replace(messages[1], provider_url=url)
        return messages

    with_password = answered_by("https://bob:hunter2@llm.example/v1/?api_key=sk-1")
    material = request_key(with_password, None, parameters(), model_id=MODEL)
    assert material["messages"][1]["provider_url"] == "https://llm.example/v1"
    assert "hunter2" not in json.dumps(material)
    assert key(messages=with_password) == key(messages=answered_by("https://llm.example/v1/"))
    assert key(messages=with_password) != key(messages=answered_by("https://other.example/v1/"))


SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.pydantic_ai.test_request_key import key
print(json.dumps(key()))
"""


@pytest.mark.parametrize("seed", ["0", "1", "12345"])
def test_key_is_identical_in_a_fresh_process_under_another_hash_seed(seed: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=root)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == key()
