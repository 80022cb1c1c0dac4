"""In-memory hit contenders: each is filled with the workload, then asked for entries it holds.

In-memory peers are keyed the way their users key them: by the prompt itself (Python caches a
str's hash, so a dict or async-lru pays nothing per lookup for a 2 KB prompt), which is faster
than any key that survives a restart. agentcache hashes the prompt (sha256) on every call because
the same key must find the same entry in SQLite or Redis from another process; hence the baseline
is a dict plus a sha256 of the prompt per op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MEMORY_CONTENDERS", "MemoryContender"]

Getter = Callable[[str], Awaitable[Any]]
Builder = Callable[[Sequence[tuple[str, str]], Path], Awaitable[tuple[Getter, Callable[[], Awaitable[None]]]]]


@dataclass(frozen=True)
class MemoryContender:
    """A name, the modules it needs, and a builder returning (get, close) over a filled cache."""

    name: str
    requires: tuple[str, ...]
    build: Builder
    note: str = ""
    agentcache: bool = False
    baseline: bool = False
    reference: bool = False


async def _nothing() -> None:
    return None


async def _dict_prehashed(pairs: Sequence[tuple[str, str]], _root: Path) -> tuple[Getter, Any]:
    table = dict(pairs)

    async def get(prompt: str) -> Any:
        return table.get(prompt)

    return get, _nothing


async def _dict_sha256(pairs: Sequence[tuple[str, str]], _root: Path) -> tuple[Getter, Any]:
    table = {hashlib.sha256(p.encode()).hexdigest(): v for p, v in pairs}
    sha256 = hashlib.sha256

    async def get(prompt: str) -> Any:
        return table.get(sha256(prompt.encode()).hexdigest())

    return get, _nothing


def _agentcache(url_of: Callable[[Path], str]) -> Builder:
    async def build(pairs: Sequence[tuple[str, str]], root: Path) -> tuple[Getter, Any]:
        from agentcache import AgentCache

        cache = AgentCache(url_of(root), l1_max_entries=max(10_000, len(pairs)))
        await cache.__aenter__()

        async def fill(prompt: str) -> str:
            raise AssertionError("filled below; never called")

        for p, v in pairs:
            await cache.set(p, v)
        for p, _v in pairs:  # fills the L1 from the store where set() did not
            await cache.get_or_call(p, fill)

        async def miss(prompt: str) -> str:
            raise AssertionError("a hit was expected")

        async def get(prompt: str) -> Any:
            return await cache.get_or_call(prompt, miss)

        async def close() -> None:
            await cache.aclose()

        return get, close

    return build


async def _async_lru(pairs: Sequence[tuple[str, str]], _root: Path) -> tuple[Getter, Any]:
    from async_lru import alru_cache

    answers = dict(pairs)

    @alru_cache(maxsize=None)
    async def get(prompt: str) -> Any:
        return answers[prompt]

    for p, _v in pairs:
        await get(p)
    return get, _nothing


def _aiocache(timeout: float | None) -> Builder:
    async def build(pairs: Sequence[tuple[str, str]], _root: Path) -> tuple[Getter, Any]:
        from aiocache import SimpleMemoryCache

        cache = SimpleMemoryCache(timeout=timeout)
        for p, v in pairs:
            await cache.set(p, v)
        return cache.get, cache.close

    return build


async def _cashews_mem(pairs: Sequence[tuple[str, str]], _root: Path) -> tuple[Getter, Any]:
    from cashews import Cache

    cache = Cache()
    cache.setup("mem://?size=1000000")
    for p, v in pairs:
        await cache.set(p, v)
    return cache.get, cache.close


async def _langchain_mem(pairs: Sequence[tuple[str, str]], _root: Path) -> tuple[Getter, Any]:
    from langchain_community.cache import InMemoryCache
    from langchain_core.outputs import Generation

    cache = InMemoryCache()
    for p, v in pairs:
        cache.update(p, LLM_STRING, [Generation(text=v)])

    async def get(prompt: str) -> Any:
        found = await cache.alookup(prompt, LLM_STRING)
        return None if found is None else found[0].text

    return get, _nothing


LLM_STRING = "model=gpt-4o temperature=0"
"""LangChain keys entries by (prompt, llm_string); one fixed model configuration here."""

MEMORY_CONTENDERS: tuple[MemoryContender, ...] = (
    MemoryContender("dict + sha256 per op", (), _dict_sha256, "the floor for a hashed key", baseline=True),
    MemoryContender("dict, prompt as key", (), _dict_prehashed, "str hash cached by Python", reference=True),
    MemoryContender(
        "agentcache memory:// (get_or_call)",
        ("agentcache.cache",),
        _agentcache(lambda _root: "memory://?max_entries=1000000"),
        agentcache=True,
    ),
    MemoryContender(
        "agentcache sqlite, L1 hit (get_or_call)",
        ("agentcache.cache",),
        _agentcache(lambda root: f"sqlite:///{root / 'l1.db'}"),
        agentcache=True,
    ),
    MemoryContender("async-lru @alru_cache", ("async_lru",), _async_lru, "prompt object as key"),
    MemoryContender(
        "aiocache SimpleMemoryCache (default)",
        ("aiocache",),
        _aiocache(5.0),
        "every op wrapped in wait_for",
    ),
    MemoryContender("aiocache SimpleMemoryCache (timeout=None)", ("aiocache",), _aiocache(None)),
    MemoryContender("cashews mem://", ("cashews",), _cashews_mem),
    MemoryContender(
        "LangChain InMemoryCache.alookup",
        ("langchain_community", "langchain_core"),
        _langchain_mem,
        "tuple key, no hashing",
    ),
)
