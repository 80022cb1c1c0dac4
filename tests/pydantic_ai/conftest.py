"""Fixtures for the pydantic-ai integration tests: no test may reach a real model provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic_ai import models

from agentcache import AgentCache
from tests.pydantic_ai.fake_api import FakeOpenAI, serve


@pytest.fixture(autouse=True)
def _no_model_requests() -> Iterator[None]:
    """Provider models raise on any request; FunctionModel and TestModel still answer."""
    with models.override_allow_model_requests(False):
        yield


@pytest.fixture
async def cache() -> AsyncIterator[AgentCache]:
    async with AgentCache("memory://") as c:
        yield c


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A local fake OpenAI API (Chat Completions and Responses) with fresh ids on every answer."""
    with serve() as api:
        yield api
