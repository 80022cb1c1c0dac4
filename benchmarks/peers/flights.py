"""Concurrent identical calls: N tasks ask for one uncached prompt at once; how many reach upstream?

Each contender wraps the same upstream (sleeps ``UPSTREAM_SECONDS``, counts its calls) the way its
documentation suggests. A contender that cannot wrap an async function at all reports the error.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .memory import LLM_STRING

__all__ = ["FLIGHT_CONTENDERS", "UPSTREAM_SECONDS", "FlightContender", "Upstream"]

UPSTREAM_SECONDS = 0.05


class Upstream:
    """The model behind the cache: slow, and counting."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str) -> str:
        self.calls += 1
        await asyncio.sleep(UPSTREAM_SECONDS)
        return f"answer to {len(prompt)} chars"


Call = Callable[[str], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]
Builder = Callable[[Upstream, Path], Awaitable[tuple[Call, Close]]]


@dataclass(frozen=True)
class FlightContender:
    """A name, the modules it needs, and a builder of the cached call around an Upstream."""

    name: str
    requires: tuple[str, ...]
    build: Builder
    note: str = ""
    agentcache: bool = False
    baseline: bool = False


async def _nothing() -> None:
    return None


async def _check_then_call(upstream: Upstream, _root: Path) -> tuple[Call, Close]:
    table: dict[str, str] = {}

    async def call(prompt: str) -> Any:
        key = hashlib.sha256(prompt.encode()).hexdigest()
        if key in table:
            return table[key]
        table[key] = value = await upstream(prompt)
        return value

    return call, _nothing


def _agentcache(url_of: Callable[[Path], str]) -> Builder:
    async def build(upstream: Upstream, root: Path) -> tuple[Call, Close]:
        from agentcache import AgentCache

        cache = AgentCache(url_of(root))
        await cache.__aenter__()

        async def call(prompt: str) -> Any:
            return await cache.get_or_call(prompt, upstream)

        return call, cache.aclose

    return build


async def _async_lru(upstream: Upstream, _root: Path) -> tuple[Call, Close]:
    from async_lru import alru_cache

    return alru_cache(maxsize=None)(upstream.__call__), _nothing


async def _cashews(upstream: Upstream, _root: Path) -> tuple[Call, Close]:
    from cashews import Cache

    cache = Cache()
    cache.setup("mem://")

    @cache(ttl="1h")
    async def call(prompt: str) -> Any:
        return await upstream(prompt)

    return call, cache.close


def _aiocache(stampede: bool) -> Builder:
    async def build(upstream: Upstream, _root: Path) -> tuple[Call, Close]:
        from aiocache import cached, cached_stampede

        decorator = cached_stampede(lease=2) if stampede else cached()

        @decorator
        async def call(prompt: str) -> Any:
            return await upstream(prompt)

        return call, _nothing

    return build


async def _langchain(upstream: Upstream, _root: Path) -> tuple[Call, Close]:
    from langchain_community.cache import InMemoryCache
    from langchain_core.outputs import Generation

    cache = InMemoryCache()

    async def call(prompt: str) -> Any:  # what BaseChatModel.agenerate does around a call
        found = await cache.alookup(prompt, LLM_STRING)
        if found is not None:
            return found[0].text
        value = await upstream(prompt)
        await cache.aupdate(prompt, LLM_STRING, [Generation(text=value)])
        return value

    return call, _nothing


async def _diskcache_memoize(upstream: Upstream, root: Path) -> tuple[Call, Close]:
    import diskcache

    cache = diskcache.Cache(str(root / "memoize"))

    @cache.memoize()
    async def call(prompt: str) -> Any:
        return await upstream(prompt)

    async def awaited(prompt: str) -> Any:
        return await call(prompt)

    async def close() -> None:
        cache.close()

    return awaited, close


FLIGHT_CONTENDERS: tuple[FlightContender, ...] = (
    FlightContender(
        "dict check-then-call", (), _check_then_call, "no single-flight: baseline", baseline=True
    ),
    FlightContender(
        "agentcache memory://",
        ("agentcache.cache",),
        _agentcache(lambda _root: "memory://"),
        agentcache=True,
    ),
    FlightContender(
        "agentcache sqlite://",
        ("agentcache.cache",),
        _agentcache(lambda root: f"sqlite:///{root / 'flight.db'}"),
        "stores the answer before releasing the flight",
        agentcache=True,
    ),
    FlightContender("async-lru", ("async_lru",), _async_lru),
    FlightContender("cashews @cache (mem://)", ("cashews",), _cashews),
    FlightContender("aiocache @cached", ("aiocache",), _aiocache(stampede=False)),
    FlightContender("aiocache @cached_stampede", ("aiocache",), _aiocache(stampede=True)),
    FlightContender(
        "LangChain InMemoryCache (lookup, call, update)",
        ("langchain_community", "langchain_core"),
        _langchain,
    ),
    FlightContender("diskcache @memoize on an async def", ("diskcache",), _diskcache_memoize),
)
