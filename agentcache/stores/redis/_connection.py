"""RedisConnection: one store's redis-py client for the running event loop, and its error boundary.

Everything the store and its leases send goes through here:

- ``client()`` builds the client and its connection pool from the URL on first use, for the
  running event loop. redis-py's pools, connections and locks belong to the loop that made them,
  so when a later loop asks (a second ``asyncio.run``, a notebook cell, the next pytest test) the
  old client is dropped and a new one is built; the old loop is closed, so nothing is awaited on
  it (its sockets are closed when the abandoned objects are collected). Whoever keeps other
  per-loop state (the leases' listener, the store's hit timer) registers ``on_new_loop`` to drop
  it at that moment.
- ``translated(what)`` is the one place redis-py's errors become ours: connection failures and
  timeouts become ``BackendUnavailableError``, anything else ``BackendError``, ``from`` the
  driver's exception, the message naming the redacted URL.
- ``script(source)`` is a registered script (EVALSHA; redis-py loads it again if the server lost it).

Timeouts: every socket operation (connecting, each reply) waits at most ``timeout`` /
``connect_timeout`` seconds, ``DEFAULT_TIMEOUT`` (1 s) unless the URL or the constructor says
otherwise. A cache's commands (an MGET, a MULTI/EXEC of a few KB, a SET NX) take well under a
millisecond on a healthy server and a round trip or two across regions; a server that has not
answered within a second is paused, partitioned or swamped, and each second waited is a second
added to a call the cache exists to make faster (an LLM call takes seconds). The guard above
(``_guard.py``) then rests the store, so one outage costs one such wait per process. A command
that timed out is not retried (the server would be waited for twice); one that met a broken
connection is retried once at once (a pooled connection is stale after a server restart).
redis-py's pool reconnects by itself on the next command after an outage.

The password only lives inside the redis-py pool: ``url`` shows it as ``***``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from types import MappingProxyType
from typing import Any, final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._loops import LoopBinding
from ...errors import BackendError, BackendUnavailableError, ConfigurationError
from .._url import redact_url, split_url

__all__ = ["DEFAULT_TIMEOUT", "RedisConnection", "unreachable"]

DEFAULT_TIMEOUT = 1.0
"""Seconds a command's connect, and each of its replies, may take before the server counts as down."""


@final
class RedisConnection:
    """The redis-py client of one Redis URL, rebuilt for each event loop that uses it."""

    __slots__ = (
        "_client",
        "_loop",
        "_on_new_loop",
        "_options",
        "_raw_url",
        "_scripts",
        "loop_binding",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 64,
        **client_options: Any,
    ) -> None:
        split_url(url)  # a URL that reads two ways is refused here, before redis-py reads it its way
        self.url = redact_url(url)
        _check_seconds("timeout", timeout)
        _check_seconds("connect_timeout", connect_timeout)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigurationError(f"redis max_connections must be an int >= 1, not {max_connections!r}")
        # Who touches these: built once; the password stays inside the URL redis-py is given.
        self._raw_url = url
        self._options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "max_connections": max_connections,
            "timeout": timeout,  # the wait for a free pooled connection
            # Retried once only when the connection broke, never when the server did not answer.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            **client_options,
        }
        # Who touches these: only the event loop's thread; all of it belongs to ``_loop``.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._on_new_loop: list[Callable[[], None]] = []
        # The loop every part of the store serves (this client, the store's and the leases'
        # batchers): shared, so that no part adopts a loop the others refuse.
        self.loop_binding = LoopBinding(f"Redis store {self.url}")

    def __repr__(self) -> str:
        return f"RedisConnection({self.url!r})"

    @property
    def options(self) -> Mapping[str, Any]:
        """The options the client is built with (timeouts, pool size, TLS settings)."""
        return MappingProxyType(self._options)

    def on_new_loop(self, forget: Callable[[], None]) -> None:
        """Call ``forget`` whenever a new event loop takes over, to drop state of the old one."""
        self._on_new_loop.append(forget)

    def follow_loop(self) -> asyncio.AbstractEventLoop:
        """Adopt the running event loop, dropping the previous loop's client unawaited; return it."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return loop
        self.loop_binding.bind(loop)  # before the client of the loop served so far is dropped
        stale = self._loop is not None
        self._loop = loop
        self._client = None
        self._scripts = {}
        if stale:
            for forget in self._on_new_loop:
                forget()
        return loop

    def client(self) -> aioredis.Redis:
        """The client of the running event loop, built on first use."""
        self.follow_loop()
        client = self._client
        if client is None:
            # A blocking pool: a burst beyond max_connections waits for a connection, never fails.
            pool = aioredis.BlockingConnectionPool.from_url(self._raw_url, **self._options)
            client = self._client = aioredis.Redis.from_pool(pool)  # closing it closes the pool
        return client

    def script(self, source: str) -> AsyncScript:
        """``source`` registered with the running loop's client."""
        client = self.client()
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return script

    @contextmanager
    def translated(self, what: str) -> Iterator[None]:
        """Run the block, raising redis-py's errors as ``BackendError`` / ``BackendUnavailableError``."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError) as exc:
            raise BackendUnavailableError(f"{self.url}: {what}: {exc}") from exc
        except RedisError as exc:
            raise BackendError(f"{self.url}: {what}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the running loop's client and its pool (a later command builds them again)."""
        self.follow_loop()
        client, self._client = self._client, None
        self._scripts = {}
        if client is not None:
            with suppress(RedisError, OSError):
                await client.aclose()


def _check_seconds(name: str, seconds: object) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
        raise ConfigurationError(f"redis {name} must be a positive number of seconds, not {seconds!r}")


def unreachable(exc: Exception) -> bool:
    """A failure that means the server cannot be reached (what is queued behind it would meet it too)."""
    return isinstance(exc, BackendUnavailableError)
