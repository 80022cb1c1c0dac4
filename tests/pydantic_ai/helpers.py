"""A scripted 'LLM' for the pydantic-ai tests: counts calls, can hold them at a gate, streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models import Model, ModelRequestParameters, check_allow_model_requests
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

STREAM_WORDS = ["The ", "answer ", "is ", "forty-", "two."]


class Verdict(BaseModel):
    """A structured output type."""

    label: str
    score: int


class Scripted:
    """Backs a FunctionModel: a tool call first, then a final answer (text or output tool).

    ``calls`` counts upstream requests; ``gate`` (if set) holds each request until it is opened;
    ``answers`` makes each call answer differently (for samples).
    """

    def __init__(self, *, model_name: str = "gpt-4o-mini", vary: bool = False) -> None:
        self.calls = 0
        self.stream_calls = 0
        self.model_name = model_name
        self.vary = vary
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail_with: BaseException | None = None

    def model(self) -> FunctionModel:
        return FunctionModel(self.respond, stream_function=self.stream, model_name=self.model_name)

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        usage = RequestUsage(input_tokens=1000, output_tokens=500)
        if info.function_tools and len(messages) == 1:
            part: Any = ToolCallPart(info.function_tools[0].name, {"topic": "tides"})
            return ModelResponse(parts=[part], usage=usage)
        if info.output_tools:
            args = {"label": "ok", "score": self.calls if self.vary else 7}
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)], usage=usage)
        text = f"answer #{self.calls}" if self.vary else "plain answer"
        return ModelResponse(parts=[TextPart(text)], usage=usage)

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        self.stream_calls += 1
        self.started.set()
        yield STREAM_WORDS[0]
        if self.gate is not None:
            await self.gate.wait()
        for word in STREAM_WORDS[1:]:
            if self.fail_with is not None:
                raise self.fail_with
            yield word


def tool_agent(model: Any, **kwargs: Any) -> Agent[None, Verdict]:
    """An agent that calls one tool, then answers with structured output."""
    agent: Agent[None, Verdict] = Agent(model, output_type=Verdict, instructions="Judge the topic.", **kwargs)

    @agent.tool
    def research(ctx: RunContext[None], topic: str) -> str:
        """Look a topic up."""
        return f"notes on {topic}"

    return agent


class ProviderLike(Model):
    """A model that, like every provider model, refuses requests when ALLOW_MODEL_REQUESTS is off."""

    def __init__(self, script: Scripted) -> None:
        super().__init__()
        self.script = script

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        check_allow_model_requests()
        info = AgentInfo(
            function_tools=model_request_parameters.function_tools,
            allow_text_output=model_request_parameters.allow_text_output,
            output_tools=model_request_parameters.output_tools,
            model_settings=model_settings,
            model_request_parameters=model_request_parameters,
            instructions=None,
        )
        return await self.script.respond(messages, info)

    @property
    def model_name(self) -> str:
        return self.script.model_name

    @property
    def system(self) -> str:
        return "openai"
