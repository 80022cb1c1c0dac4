"""Test helpers shared by several test modules: a settable clock, counting upstream calls.

Also ``PYDANTIC_AI_UNAVAILABLE``: whether this Python cannot have pydantic-ai at all.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Awaitable, Callable
from typing import Any

PYDANTIC_AI_UNAVAILABLE = sys.version_info < (3, 11) and importlib.util.find_spec("pydantic_ai") is None
"""pydantic-ai needs Python 3.11+ (pyproject.toml): on 3.10 the tests that need it do not run.

On 3.11 and later ``.[dev]`` installs it, so a missing pydantic-ai there fails those tests instead.
"""


class FakeClock:
    """An injectable wall clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Upstream:
    """An async 'LLM' that counts its calls; optionally waits on an event before answering."""

    def __init__(self, answer: Callable[[Any], Any] = lambda key: f"answer to {key}") -> None:
        self.calls = 0
        self.answer = answer
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.cancelled = 0

    def gated(self) -> Upstream:
        self.gate = asyncio.Event()
        return self

    async def __call__(self, key: Any) -> Any:
        self.calls += 1
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.answer(key)


async def settle() -> None:
    """Let every ready task run until it blocks (a handful of loop turns, no wall-clock sleep)."""
    for _ in range(10):
        await asyncio.sleep(0)


def raiser(exc: BaseException) -> Callable[[Any], Awaitable[Any]]:
    async def call(_key: Any) -> Any:
        raise exc

    return call
