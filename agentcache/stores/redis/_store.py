"""RedisStore: the Store protocol over one Redis database (entries, expiry, hit bookkeeping, scans).

Layout under the key prefix (``?prefix=``, default ``agentcache:``)::

    <prefix>e:<stored key>   the entry: one string (``_envelope.py``), expiring via PX
    <prefix>h:<stored key>   its hit bookkeeping, "<count> <last hit>", expiring with the entry
    <prefix>l:<stored key>   a lease (cross-process single-flight, ``_leases.py``)
    <prefix>released         pub/sub channel of released leases (``_leases.py``)

Stored keys begin with their namespace, so each namespace is a prefix of its own and ``clear``
and ``scan`` find it with ``SCAN MATCH``. Namespaces are checked at this boundary
(``keys.validate_namespace``: never a glob), and glob characters of the prefix and namespace are
escaped in the pattern as well. Redis enforces the TTL (PX = the entry's lifetime); the ``now``
passed to ``get_many`` is checked against ``expires_at`` as well, so a cache driven by another
clock sees the same expiry it would in any other store.

Concurrent ``get_many`` calls share one MGET (or one pipeline of MGETs), concurrent ``set_many``
calls one MULTI/EXEC, which also releases the leases passed with the values. Everything is sent
through the store's ``RedisConnection`` (``_connection.py``), which translates driver errors and
follows the running event loop: a store used from a second ``asyncio.run`` reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from typing import Any, final
from urllib.parse import SplitResult

import redis.asyncio as aioredis

from ...errors import BackendError, ConfigurationError
from ...keys import validate_namespace
from .. import query_options
from .._batch import MicroBatcher
from ..base import Entry
from ..capabilities import Lease, release_keys
from ._connection import DEFAULT_TIMEOUT, RedisConnection, unreachable
from ._envelope import pack, unpack
from ._leases import RedisLeases

__all__ = ["DEFAULT_PREFIX", "RedisStore", "from_url"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "agentcache:"
_MGET_MAX = 1_000  # keys per MGET: bounded replies, and other clients are not stalled long
_SCAN_COUNT = 500  # keys per SCAN step and per MGET batch while scanning
_HIT_FLUSH_DELAY = 1.0  # seconds hit bookkeeping may lag
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")

# Adds pending hit counts to each live entry's bookkeeping string, expiring it with the entry.
# KEYS: entry, hits, entry, hits...; ARGV: count, last hit, count, last hit... (same indices).
_FLUSH_HITS_LUA = """
for i = 1, #KEYS, 2 do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl ~= -2 then
    local n = tonumber(ARGV[i])
    local cur = redis.call('GET', KEYS[i + 1])
    if cur then n = n + tonumber(string.match(cur, '^(%d+)')) end
    local v = n .. ' ' .. ARGV[i + 1]
    if ttl > 0 then redis.call('SET', KEYS[i + 1], v, 'PX', ttl)
    else redis.call('SET', KEYS[i + 1], v) end
  end
end
return 0
"""

_Write = tuple[Sequence[tuple[str, Entry]], Lease | None]


@final
class RedisStore:
    """A Store over one Redis database; ``leases()`` gives its LeaseStore.

    ``timeout`` / ``connect_timeout``: the seconds a reply / a connect may take before the server
    counts as down (default ``DEFAULT_TIMEOUT``, 1 s; ``?timeout=`` and ``?connect_timeout=`` in a
    URL). A cache fails open on a server that does not answer, so this is the most one outage
    stalls a call; raise it for a server that is slow but healthy (``_connection.py`` says why 1 s).
    ``max_connections`` bounds the pool; ``client_options`` go to redis-py's pool as they are.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 64,
        **client_options: Any,
    ) -> None:
        if not prefix:
            raise ConfigurationError("redis prefix must not be empty")
        self._connection = RedisConnection(
            url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            **client_options,
        )
        self.url = self._connection.url
        self.prefix = prefix
        self._glob_prefix = _glob_escaped(prefix)
        self._leases = RedisLeases(self._connection, prefix)
        # A server that cannot be reached is the same outage for what is queued behind the batch
        # that found out: those fail with it at once rather than each waiting out a timeout.
        loop_binding = self._connection.loop_binding
        self._reads: MicroBatcher[Sequence[str], dict[str, Entry]] = MicroBatcher(
            self._read_batch, shares_outage=unreachable, loop_binding=loop_binding
        )
        self._writes: MicroBatcher[_Write, None] = MicroBatcher(
            self._write_batch, shares_outage=unreachable, loop_binding=loop_binding
        )
        # Who touches these: only the event loop's thread.
        self._opened = False
        self._hits: dict[str, tuple[int, float]] = {}  # waiting to be flushed: key -> (count, last hit)
        self._flush_task: asyncio.Task[None] | None = None  # belongs to the running loop
        self._connection.on_new_loop(self._forget_loop)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    def _ekey(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _hkey(self, key: str) -> str:
        return f"{self.prefix}h:{key}"

    # -- opening and closing -------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and check the server answers; idempotent; retried on the next call if down."""
        if self._opened:
            return
        with self._connection.translated("connect"):
            await self._connection.client().ping()
        self._opened = True

    async def aclose(self) -> None:
        """Let queued writes land, flush hit bookkeeping, stop listening, close the connections."""
        self._connection.follow_loop()
        await self._writes.wait_idle()
        await self._reads.wait_idle()
        flush, self._flush_task = self._flush_task, None
        if flush is not None:
            flush.cancel()
            with suppress(asyncio.CancelledError):
                await flush
        with suppress(BackendError):
            await self._flush_hits()
        await self._leases.aclose()
        await self._connection.aclose()
        self._opened = False

    def _forget_loop(self) -> None:
        """A new event loop took over: the old loop's hit timer is gone; the counts stay."""
        self._flush_task = None

    # -- reads ---------------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        """Entries of ``keys`` (``None``: missing or expired), fetched together with concurrent calls.

        Serving needs no bookkeeping, so ``hits``/``last_hit_at`` are left at 0/None here (one MGET
        per batch); ``scan`` reads them.
        """
        if not keys:
            return []
        found = await self._reads.submit_nowait(keys)  # one coroutine less per read than submit()
        out: list[Entry | None] = []
        for key in keys:
            entry = found.get(key)
            out.append(None if entry is None or entry.is_expired(now) else entry)
        return out

    async def _read_batch(self, batch: list[Sequence[str]]) -> list[dict[str, Entry]]:
        """Every get_many queued meanwhile shares one MGET; each gets the same found entries."""
        with self._connection.translated("get"):
            found = await self._read_raw(list({key for keys in batch for key in keys}))
        return [found] * len(batch)

    async def _read_raw(self, keys: list[str], *, with_hits: bool = False) -> dict[str, Entry]:
        """The entries of ``keys``: one MGET, or one pipeline of MGETs for many keys or with hits."""
        client = self._connection.client()
        if len(keys) <= _MGET_MAX and not with_hits:
            blobs: list[Any] = await client.mget([self._ekey(k) for k in keys])
            hits: list[bytes | None] = [None] * len(keys)
        else:
            pipe = client.pipeline(transaction=False)
            for start in range(0, len(keys), _MGET_MAX):
                chunk = keys[start : start + _MGET_MAX]
                pipe.mget([self._ekey(k) for k in chunk])
                if with_hits:
                    pipe.mget([self._hkey(k) for k in chunk])
            replies = await pipe.execute()
            step = 2 if with_hits else 1
            blobs = [blob for reply in replies[0::step] for blob in reply]
            hits = [h for reply in replies[1::2] for h in reply] if with_hits else [None] * len(keys)
        found: dict[str, Entry] = {}
        for key, blob, hit in zip(keys, blobs, hits, strict=True):
            entry = None if blob is None else unpack(key, blob, hit)
            if entry is not None:
                found[key] = entry
        return found

    # -- writes --------------------------------------------------------------------------------

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        """Insert or replace; returns once written, in one MULTI/EXEC with concurrent writers.

        ``release``, a lease we hold on one of the keys, is released in that same MULTI/EXEC; then
        ``release.released`` is set and this process's waiters on the key are woken.
        """
        if not items:
            return
        lease = release_keys(release, [key for key, _ in items])
        await self._writes.submit((items, lease))
        if lease is not None:
            lease.released = True
            self._leases.wake([lease.key])

    async def _write_batch(self, batch: list[_Write]) -> list[None]:
        """SET with PX = each entry's lifetime (Redis drops it then); a new entry has no hits yet.

        The leases written with the values are released (and announced) in the same MULTI/EXEC.
        """
        with self._connection.translated("set"):
            pipe = self._connection.client().pipeline(transaction=True)
            for items, _ in batch:
                for key, entry in items:
                    ekey = self._ekey(key)
                    if entry.expires_at is None:
                        pipe.set(ekey, pack(entry))
                    else:
                        lifetime_ms = math.ceil((entry.expires_at - entry.created_at) * 1000)
                        if lifetime_ms <= 0:  # born expired: nothing to keep, but it still replaces
                            pipe.delete(ekey)
                        else:
                            pipe.set(ekey, pack(entry), px=lifetime_ms)
                    pipe.delete(self._hkey(key))
            leases = [lease for _, lease in batch if lease is not None]
            if leases:
                self._leases.queue_release(pipe, leases)
            await pipe.execute()
        return [None] * len(batch)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """DEL the entries (and their bookkeeping); how many entries existed."""
        if not keys:
            return 0
        with self._connection.translated("delete"):
            pipe = self._connection.client().pipeline(transaction=True)
            pipe.delete(*[self._ekey(k) for k in keys])
            pipe.delete(*[self._hkey(k) for k in keys])
            removed, _ = await pipe.execute()
        for key in keys:
            self._hits.pop(key, None)
        return int(removed)

    async def clear(self, namespace: str | None) -> int:
        """SCAN the namespace's entries and delete them in batches; how many were deleted."""
        if namespace is not None:
            validate_namespace(namespace)
        removed = 0
        batch: list[str] = []
        with self._connection.translated("clear"):
            client = self._connection.client()
            async for ekey in self._scan_keys(namespace):
                batch.append(ekey)
                if len(batch) >= _SCAN_COUNT:
                    removed += await self._delete_entry_keys(client, batch)
                    batch = []
            if batch:
                removed += await self._delete_entry_keys(client, batch)
        if namespace is None:
            self._hits.clear()
        else:
            for key in [k for k in self._hits if k.startswith(f"{namespace}:")]:
                del self._hits[key]
        return removed

    async def _delete_entry_keys(self, client: aioredis.Redis, ekeys: list[str]) -> int:
        marker = len(f"{self.prefix}e:")
        pipe = client.pipeline(transaction=False)
        pipe.delete(*ekeys)
        pipe.delete(*[self._hkey(ekey[marker:]) for ekey in ekeys])
        removed, _ = await pipe.execute()
        return int(removed)

    # -- scanning ------------------------------------------------------------------------------

    def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        """Every live entry of ``namespace`` (all when ``None``), newest first; refuses a bad namespace."""
        if namespace is not None:
            validate_namespace(namespace)  # here, not at the first iteration
        return self._scan(namespace)

    async def _scan(self, namespace: str | None) -> AsyncIterator[tuple[str, Entry]]:
        marker = len(f"{self.prefix}e:")
        found: list[tuple[str, Entry]] = []
        batch: list[str] = []
        with self._connection.translated("scan"):
            async for ekey in self._scan_keys(namespace):
                batch.append(ekey[marker:])
                if len(batch) >= _SCAN_COUNT:
                    found.extend((await self._read_raw(batch, with_hits=True)).items())
                    batch = []
            if batch:
                found.extend((await self._read_raw(batch, with_hits=True)).items())
        found.sort(key=lambda kv: kv[1].created_at, reverse=True)
        for item in found:
            yield item

    async def _scan_keys(self, namespace: str | None) -> AsyncIterator[str]:
        """The entry keys of ``namespace``; every glob character of prefix and namespace escaped."""
        wanted = "*" if namespace is None else f"{_glob_escaped(namespace)}:*"
        pattern = f"{self._glob_prefix}e:{wanted}"
        async for raw in self._connection.client().scan_iter(match=pattern, count=_SCAN_COUNT):
            yield raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw

    # -- hit bookkeeping -----------------------------------------------------------------------

    def note_hit(self, key: str, now: float) -> None:
        """Count a hit in memory; a background task flushes the counts in one script call."""
        count, _ = self._hits.get(key, (0, now))
        self._hits[key] = (count + 1, now)
        loop = self._connection.follow_loop()
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        # Asked here, not in `finally`: a loop closed without cancelling this task destroys it
        # later, with no loop running, and `finally` must not need one then.
        me = asyncio.current_task()
        try:
            await asyncio.sleep(_HIT_FLUSH_DELAY)
            await self._flush_hits()
        except BackendError as exc:  # bookkeeping only: never worth failing anything for
            log.debug("dropped hit bookkeeping for %s: %s", self.url, exc)
        finally:
            if self._flush_task is me:
                self._flush_task = None

    async def _flush_hits(self) -> None:
        if not self._hits:
            return
        pending, self._hits = self._hits, {}
        keys: list[str] = []
        args: list[str] = []
        for key, (count, last) in pending.items():
            keys += [self._ekey(key), self._hkey(key)]
            args += [str(count), repr(last)]
        with self._connection.translated("record hits"):
            await self._connection.script(_FLUSH_HITS_LUA)(keys=keys, args=args)

    def unreachable(self, exc: BackendError) -> bool:
        """True if ``exc`` means the server did not answer at all (``capabilities.Reachability``)."""
        return unreachable(exc)

    # -- leases --------------------------------------------------------------------------------

    def leases(self) -> RedisLeases:
        """Cross-process (and cross-machine) leases on this store's keys (one object per store)."""
        return self._leases


def _glob_escaped(text: str) -> str:
    """``text`` matching only itself in a SCAN MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def from_url(parts: SplitResult) -> RedisStore:
    """``redis://[[user]:password@]host[:port][/db][?prefix=&timeout=&connect_timeout=...]``.

    A user name or password holding ``/``, ``?``, ``#``, ``@``, ``%``, ``[`` or ``]`` is percent-
    encoded (``urllib.parse.quote(password, safe='')``); a URL that could be read two ways is
    refused (``stores/_url.py``). ``timeout`` and ``connect_timeout`` are seconds (default 1, see
    ``RedisStore``). ``rediss://`` is TLS; ``ssl_cert_reqs=none|optional|required`` and
    ``ssl_ca_certs=path`` tune certificate checks. ``max_connections`` bounds the pool.
    """
    options = query_options(
        parts,
        {
            "prefix": str,
            "timeout": float,
            "connect_timeout": float,
            "max_connections": int,
            "ssl_cert_reqs": _cert_reqs,
            "ssl_ca_certs": str,
        },
    )
    if options.keys() & {"ssl_cert_reqs", "ssl_ca_certs"} and parts.scheme.lower() != "rediss":
        raise ConfigurationError("ssl_cert_reqs / ssl_ca_certs need a rediss:// (TLS) URL")
    if parts.path not in ("", "/") and not parts.path.strip("/").isdigit():
        raise ConfigurationError(f"redis database must be a number (/0../15), not {parts.path!r}")
    base = parts._replace(query="", fragment="").geturl()
    return RedisStore(base, **options)  # type: ignore[arg-type]


def _cert_reqs(value: str) -> str:
    if value not in ("none", "optional", "required"):
        raise ValueError("use none, optional or required")
    return value
