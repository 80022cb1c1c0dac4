"""Leases for ``redis://`` stores: SET NX PX claims, renewal by script, pub/sub when one is released.

Keys (under the store's prefix): ``l:<stored key>`` holds the holder's token and expires by itself
(PX), so a killed holder's lease lapses on the server's clock. Renewal and release are scripts that
act only while the key still holds our token (a late holder never releases a successor's lease).
A release publishes the stored key on ``<prefix>released``; one subscription per store relays it
to this process's waiters. Messages can be lost (a reconnect, a waiter subscribing just after the
release): waiters poll regardless (``LeasePolicy``), so a lost message costs latency, never an
answer. Concurrent claims share one pipeline and concurrent releases one script call; a holder's
lease is released by the MULTI/EXEC that stores its value (``release_with``, called by
``RedisStore.set_many``), so a stored miss costs no release round trip of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ._batch import MicroBatcher
from .leases import HeldLease, held_lease, new_token

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["RedisLeases"]

log = logging.getLogger(__name__)

# Renew / release a lease only while it still holds our token (compare-and-set).
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


class RedisLeases:
    """The LeaseStore of one RedisStore (get it with ``store.leases()``)."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._channel = f"{store.prefix}released"
        self._claims: MicroBatcher[tuple[str, str, float], bool] = MicroBatcher(self._claim_batch, _NO_LIMIT)
        self._releases: MicroBatcher[tuple[str, str], None] = MicroBatcher(self._release_batch, _NO_LIMIT)
        # This process's waiters: key -> events to set when the key's lease is released.
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        """Stop listening for releases."""
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    def _lkey(self, key: str) -> str:
        return f"{self._store.prefix}l:{key}"

    async def claim(self, key: str, ttl: float) -> str | None:
        """SET NX PX: a token if this caller now holds the lease on ``key``, else ``None``."""
        token = new_token()
        won = await self._claims.submit((key, token, ttl))
        return token if won else None

    async def _claim_batch(self, batch: list[tuple[str, str, float]]) -> list[bool]:
        """One pipeline of SET NX PX for every claim made meanwhile."""
        with self._store._boundary("claim lease"):
            pipe = self._store._redis().pipeline(transaction=False)
            for key, token, ttl in batch:
                pipe.set(self._lkey(key), token, nx=True, px=_ms(ttl))
            return [bool(won) for won in await pipe.execute()]

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend our lease; False if it expired and someone else (or nobody) holds it now."""
        with self._store._boundary("renew lease"):
            client = self._store._redis()
            done = await self._store._script(client, _RENEW_LUA)(
                keys=[self._lkey(key)], args=[token, _ms(ttl)]
            )
        return bool(done)

    async def release(self, key: str, token: str) -> None:
        """Drop our lease (if still ours) and tell waiters everywhere to look again."""
        await self._releases.submit((key, token))

    async def _release_batch(self, batch: list[tuple[str, str]]) -> list[None]:
        """One script call releases every lease given back meanwhile, and publishes each."""
        with self._store._boundary("release lease"):
            client = self._store._redis()
            keys, args = self._release_arguments(batch)
            await self._store._script(client, _RELEASE_LUA)(keys=keys, args=args)
        return [None] * len(batch)

    def _release_arguments(self, batch: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
        keys = [self._lkey(key) for key, _ in batch] + [self._channel]
        return keys, [token for _, token in batch] + [key for key, _ in batch]

    def release_with(self, keys: Iterable[str]) -> HeldLease | None:
        """The running flight's lease if it is on one of ``keys`` (see ``leases.held_lease``).

        The store queues ``queue_release`` in the MULTI/EXEC that writes the keys' values, then
        sets ``released``, so that the holder has nothing left to release.
        """
        held = held_lease(self)
        return held if held is not None and held.key in keys else None

    def queue_release(self, pipe: Any, helds: list[HeldLease]) -> None:
        """Add the release (and publication) of ``helds`` to ``pipe``, a pipeline of the store.

        EVAL rather than the registered script: a pipeline holding a script first asks the server
        whether it knows it, a round trip of its own; the server caches the compiled source anyway.
        """
        keys, args = self._release_arguments([(held.key, held.token) for held in helds])
        pipe.eval(_RELEASE_LUA, len(keys), *keys, *args)

    async def wait_released(self, key: str, timeout: float) -> None:
        """Return when ``key``'s lease is released (pub/sub) or after ``timeout`` (polling)."""
        self._ensure_listener()
        event = asyncio.Event()
        waiters = self._waiters.setdefault(key, set())
        waiters.add(event)
        try:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(key, None)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        """Relay release notifications to this process's waiters; resubscribe after outages.

        A lost message only costs latency: waiters poll with their own timeout regardless.
        """
        while True:
            pubsub = self._store._redis().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    key = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
                    for event in self._waiters.get(key, ()):
                        event.set()
            except (RedisError, OSError) as exc:
                log.debug("lease notifications from %s interrupted: %s", self._store.url, exc)
                await asyncio.sleep(0.5)
            finally:
                with suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


_NO_LIMIT = 1 << 62  # every claim (release) waiting shares one pipeline, however many there are


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
