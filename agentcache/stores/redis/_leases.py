"""RedisLeases: a Redis store's leases on keys (cross-process single-flight), over its RedisConnection.

Keys (under the store's prefix): ``l:<stored key>`` holds the holder's token and expires by itself
(SET NX PX), so a killed holder's lease lapses on the server's clock. Renewal and release are
scripts that act only while the key still holds our token (a late holder never releases a
successor's lease). A release publishes the stored key on ``<prefix>released``; one subscription
per store relays it to this process's waiters, and a release made here wakes them directly.
Messages can be lost (a reconnect, a waiter subscribing just after the release): waiters poll
regardless (``leasing.LeasePolicy``), so a lost message costs latency, never an answer.

Concurrent claims share one pipeline and concurrent releases one script call (``LeaseBatches``).
A holder's lease is normally released by the MULTI/EXEC that stores its value: the store adds
``queue_release`` to that transaction and then calls ``wake``, so a stored miss costs no release
round trip of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, final

from redis.exceptions import RedisError

from .._lease_batches import LeaseBatches
from ..capabilities import Lease
from ._connection import unreachable

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline, PubSub

    from ._connection import RedisConnection

__all__ = ["RedisLeases"]

log = logging.getLogger(__name__)

# Renew a lease only while it still holds our token (compare-and-set).
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Releases a batch: KEYS are lease keys then the channel; ARGV are tokens then stored keys.
_RELEASE_LUA = """
local n = #KEYS - 1
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    redis.call('PUBLISH', KEYS[#KEYS], ARGV[n + i])
  end
end
return 0
"""
_RESUBSCRIBE_DELAY = 0.5  # seconds between attempts to listen again after an outage


@final
class RedisLeases:
    """The LeaseStore of one RedisStore (get it with ``store.leases()``)."""

    def __init__(self, connection: RedisConnection, prefix: str) -> None:
        self._connection = connection
        self._prefix = prefix
        self.channel = f"{prefix}released"
        """The pub/sub channel on which releases are announced."""
        self._batches = LeaseBatches(
            self._claim_batch,
            self._release_batch,
            shares_outage=unreachable,
            loop_binding=connection.loop_binding,
        )
        # Who touches these: only the event loop's thread; both belong to the running loop.
        # This process's waiters: key -> events to set when the key's lease is released.
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        connection.on_new_loop(self._forget_loop)

    def __repr__(self) -> str:
        return f"RedisLeases({self._connection.url!r}, prefix={self._prefix!r})"

    def _lkey(self, key: str) -> str:
        return f"{self._prefix}l:{key}"

    # -- the LeaseStore protocol ---------------------------------------------------------------

    async def claim(self, key: str, token: str, ttl: float) -> bool:
        """SET NX PX: True if ``token`` now holds the lease on ``key`` for ``ttl`` seconds."""
        return await self._batches.claims.submit((key, token, ttl))

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend our lease; False if it expired and someone else (or nobody) holds it now."""
        with self._connection.translated("renew lease"):
            done = await self._connection.script(_RENEW_LUA)(keys=[self._lkey(key)], args=[token, _ms(ttl)])
        return bool(done)

    async def settle(self) -> None:
        """Return once no claim or release made on this loop is still on its way (before closing)."""
        await self._batches.settle()

    async def release(self, key: str, token: str) -> None:
        """Drop our lease (if still ours) and tell waiters everywhere to look again."""
        await self._batches.releases.submit((key, token))

    async def wait_released(self, key: str, timeout: float) -> None:
        """Return when ``key``'s lease is released (a notification) or after ``timeout`` (polling)."""
        self._ensure_listener()
        event = asyncio.Event()
        waiters = self._waiters.setdefault(key, set())
        waiters.add(event)
        try:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            waiters.discard(event)
            if not waiters and self._waiters.get(key) is waiters:
                del self._waiters[key]

    # -- what the store uses -------------------------------------------------------------------

    def queue_release(self, pipe: Pipeline, leases: Sequence[Lease]) -> None:
        """Add the release (and announcement) of ``leases`` to ``pipe``, a transaction of the store.

        EVAL rather than the registered script: a pipeline holding a script first asks the server
        whether it knows it, a round trip of its own; the server caches the compiled source anyway.
        """
        keys, args = self._release_arguments([(lease.key, lease.token) for lease in leases])
        pipe.eval(_RELEASE_LUA, len(keys), *keys, *args)

    def wake(self, keys: Iterable[str]) -> None:
        """Wake this process's waiters on ``keys`` (their leases were just released)."""
        for key in keys:
            for event in self._waiters.get(key, ()):
                event.set()

    async def aclose(self) -> None:
        """Let queued claims and releases land, then stop listening for releases."""
        await self._batches.settle()
        listener, self._listener = self._listener, None
        if listener is not None and listener.get_loop() is asyncio.get_running_loop():
            listener.cancel()
            with suppress(asyncio.CancelledError):
                await listener

    # -- batches and the listener --------------------------------------------------------------

    async def _claim_batch(self, batch: list[tuple[str, str, float]]) -> list[bool]:
        """One pipeline of SET NX PX for every claim made meanwhile."""
        with self._connection.translated("claim lease"):
            pipe = self._connection.client().pipeline(transaction=False)
            for key, token, ttl in batch:
                pipe.set(self._lkey(key), token, nx=True, px=_ms(ttl))
            return [bool(won) for won in await pipe.execute()]

    async def _release_batch(self, batch: list[tuple[str, str]]) -> list[None]:
        """One script call releases every lease given back meanwhile, and announces each."""
        keys, args = self._release_arguments(batch)
        with self._connection.translated("release lease"):
            await self._connection.script(_RELEASE_LUA)(keys=keys, args=args)
        self.wake(key for key, _ in batch)
        return [None] * len(batch)

    def _release_arguments(self, batch: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
        keys = [self._lkey(key) for key, _ in batch] + [self.channel]
        return keys, [token for _, token in batch] + [key for key, _ in batch]

    def _ensure_listener(self) -> None:
        self._connection.follow_loop()  # a listener of a previous loop is dropped, not reused
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    def _forget_loop(self) -> None:
        """A new event loop took over: the old loop's listener and waiters can never run again."""
        self._listener = None
        self._waiters = {}

    async def _listen(self) -> None:
        """Relay release notifications to this process's waiters; subscribe again after outages."""
        while True:
            pubsub = self._connection.client().pubsub(ignore_subscribe_messages=True)
            try:
                await self._relay(pubsub)
            except GeneratorExit:
                # Destroyed with the closed loop it ran on: closing the subscription would await
                # on that loop. Its socket is closed when the abandoned client is collected.
                raise
            except BaseException as exc:
                with suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                if not isinstance(exc, (RedisError, OSError)):
                    raise
                log.debug("lease notifications from %s interrupted: %s", self._connection.url, exc)
                await asyncio.sleep(_RESUBSCRIBE_DELAY)

    async def _relay(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self.channel)
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
            if message is not None and message.get("type") == "message":
                data = message["data"]
                self.wake([data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data])


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
