"""``redis://`` and ``rediss://``: entries and leases in a Redis (or Valkey) server, via redis-py.

Layout under the key prefix (``?prefix=``, default ``agentcache:``)::

    <prefix>e:<stored key>   the entry: one string (envelope + value bytes), expiring via PX
    <prefix>h:<stored key>   its hit bookkeeping, "<count> <last hit>", expiring with the entry
    <prefix>l:<stored key>   a lease (cross-process single-flight, redis_leases.py)
    <prefix>released         pub/sub channel of released leases (redis_leases.py)

Stored keys begin with their namespace, so each namespace is a prefix of its own and ``clear``
and ``scan`` find it with ``SCAN MATCH``. Redis enforces the TTL (PX = the entry's lifetime); the
``now`` passed to ``get_many`` is checked against ``expires_at`` as well, so a cache driven by
another clock sees the same expiry it would in any other store.

Driver errors are translated at one boundary (``_boundary``, which the leases use too): connection
failures and timeouts become ``BackendUnavailableError``, anything else ``BackendError``.
redis-py's pool reconnects by itself on the next command after an outage; a failed command is
retried once (a pooled connection may be stale after a server restart) and never backs off, so an
outage costs one quick failure per call and the cache above fails open. The password only lives
inside the redis-py client: ``url`` and ``repr`` show it as ``***``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import SplitResult

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('redis:// stores need an optional dependency: pip install "agentcache[redis]"') from exc

from ..errors import BackendError, BackendUnavailableError, ConfigurationError
from .base import Entry
from .leases import HeldLease
from .redis_leases import RedisLeases

__all__ = ["RedisStore", "from_url"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "agentcache:"
_MGET_MAX = 1_000  # keys per MGET: bounded replies, and other clients are not stalled long
_SCAN_COUNT = 500  # keys per SCAN step and per MGET batch while scanning
_HIT_FLUSH_DELAY = 1.0  # seconds hit bookkeeping may lag
# An entry: format byte 1; created_at, expires_at (NaN: none), call_seconds as doubles; the byte
# lengths of the meta JSON and of the material (all ones: none); then meta, material, value bytes.
# Fixed-size numbers keep a hit free of JSON parsing unless the entry has metadata.
_ENVELOPE = b"\x01"
_HEAD = struct.Struct(">dddII")
_NO_MATERIAL = 0xFFFFFFFF
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


class RedisStore:
    """A Store over one Redis database; ``leases()`` gives its LeaseStore."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_connections: int = 64,
        **client_options: Any,
    ) -> None:
        from . import redact_url

        if not prefix:
            raise ConfigurationError("redis prefix must not be empty")
        self.url = redact_url(url)
        self.prefix = prefix
        self._glob_prefix = _GLOB_SPECIAL.sub(r"\\\1", prefix)
        # Who touches it: built once; redis-py keeps the password inside its connection pool.
        self._client_args: tuple[str, dict[str, Any]] = (
            url,
            {
                "socket_timeout": timeout,
                "socket_connect_timeout": connect_timeout,
                "max_connections": max_connections,
                "timeout": timeout,  # the wait for a free pooled connection
                "retry": Retry(NoBackoff(), 1),
                **client_options,
            },
        )
        self._client: aioredis.Redis | None = None
        self._opened = False
        # Micro-batches (touched only from the event loop's thread, like everything below).
        self._pending_reads: list[tuple[Sequence[str], asyncio.Future[dict[str, Entry]]]] = []
        self._read_task: asyncio.Task[None] | None = None
        self._pending_writes: list[tuple[Sequence[tuple[str, Entry]], asyncio.Future[None]]] = []
        self._pending_releases: list[HeldLease] = []  # leases to release with the pending writes
        self._write_task: asyncio.Task[None] | None = None
        # Hit bookkeeping waiting to be flushed: key -> (count, last hit).
        self._hits: dict[str, tuple[int, float]] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._leases: RedisLeases | None = None
        self._scripts: dict[str, AsyncScript] = {}

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    # -- connection and the error boundary ---------------------------------------------------

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            url, options = self._client_args
            # A blocking pool: a burst beyond max_connections waits for a connection, never fails.
            pool = aioredis.BlockingConnectionPool.from_url(url, **options)
            self._client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        return self._client

    @contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        """The one place redis-py's errors become ours."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError) as exc:
            raise BackendUnavailableError(f"{self.url}: {what}: {exc}") from exc
        except RedisError as exc:
            raise BackendError(f"{self.url}: {what}: {exc}") from exc

    async def open(self) -> None:
        """Connect and check the server answers; idempotent; retried on the next call if down."""
        if self._opened:
            return
        with self._boundary("connect"):
            await self._redis().ping()
        self._opened = True

    async def aclose(self) -> None:
        """Flush hit bookkeeping, stop listening for lease releases, close the connections."""
        if self._flush_task is not None:
            self._flush_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._flush_task
            self._flush_task = None
        with suppress(BackendError):
            await self._flush_hits()
        if self._leases is not None:
            await self._leases.aclose()
        if self._client is not None:
            client, self._client = self._client, None
            with suppress(RedisError, OSError):
                await client.aclose()
        self._opened = False

    # -- the Store protocol ------------------------------------------------------------------

    def _ekey(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _hkey(self, key: str) -> str:
        return f"{self.prefix}h:{key}"

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        """Entries of ``keys`` (``None``: missing or expired), fetched together with concurrent calls.

        Serving needs no bookkeeping, so ``hits``/``last_hit_at`` are left at 0/None here (one MGET
        per batch); ``scan`` reads them.
        """
        if not keys:
            return []
        future: asyncio.Future[dict[str, Entry]] = asyncio.get_running_loop().create_future()
        self._pending_reads.append((keys, future))
        if self._read_task is None:
            self._read_task = asyncio.ensure_future(self._drain_reads())
        found = await future
        out: list[Entry | None] = []
        for key in keys:
            entry = found.get(key)
            out.append(None if entry is None or entry.is_expired(now) else entry)
        return out

    async def _drain_reads(self) -> None:
        """Micro-batching: every get_many queued meanwhile shares one pipeline of MGETs."""
        try:
            while self._pending_reads:
                batch, self._pending_reads = self._pending_reads, []
                try:
                    with self._boundary("get"):
                        found = await self._read_raw(list({k for keys, _ in batch for k in keys}))
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(found)
        finally:
            self._read_task = None

    async def _read_raw(self, keys: list[str], *, with_hits: bool = False) -> dict[str, Entry]:
        """The entries of ``keys``: one MGET, or one pipeline of MGETs for many keys or with hits."""
        client = self._redis()
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
            entry = None if blob is None else _unpack(key, blob, hit)
            if entry is not None:
                found[key] = entry
        return found

    async def set_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        """Insert or replace; returns once written, in one MULTI/EXEC with concurrent writers."""
        if not items:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_writes.append((items, future))
        # A flight holding a key's lease releases it with the key's value, in the same MULTI/EXEC.
        leases = self._leases
        held = leases.release_with(key for key, _ in items) if leases is not None else None
        if held is not None:
            self._pending_releases.append(held)
        if self._write_task is None:
            self._write_task = asyncio.ensure_future(self._drain_writes())
        await future
        if held is not None:
            held.released = True

    async def _drain_writes(self) -> None:
        try:
            while self._pending_writes:
                batch, self._pending_writes = self._pending_writes, []
                releases, self._pending_releases = self._pending_releases, []
                try:
                    with self._boundary("set"):
                        await self._write_raw([item for items, _ in batch for item in items], releases)
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._write_task = None

    async def _write_raw(self, items: list[tuple[str, Entry]], releases: Sequence[HeldLease] = ()) -> None:
        """SET with PX = each entry's lifetime (Redis drops it then); a new entry has no hits yet.

        ``releases``: leases to release (and announce) in the same MULTI/EXEC as the values.
        """
        pipe = self._redis().pipeline(transaction=True)
        for key, entry in items:
            ekey, hkey = self._ekey(key), self._hkey(key)
            if entry.expires_at is None:
                pipe.set(ekey, _pack(entry))
            else:
                lifetime_ms = math.ceil((entry.expires_at - entry.created_at) * 1000)
                if lifetime_ms <= 0:  # born expired: nothing to keep, but it still replaces
                    pipe.delete(ekey)
                else:
                    pipe.set(ekey, _pack(entry), px=lifetime_ms)
            pipe.delete(hkey)
        if releases and self._leases is not None:
            self._leases.queue_release(pipe, list(releases))
        await pipe.execute()

    async def delete_many(self, keys: Sequence[str]) -> int:
        """DEL the entries (and their bookkeeping); how many entries existed."""
        if not keys:
            return 0
        with self._boundary("delete"):
            pipe = self._redis().pipeline(transaction=True)
            pipe.delete(*[self._ekey(k) for k in keys])
            pipe.delete(*[self._hkey(k) for k in keys])
            removed, _ = await pipe.execute()
        self._forget_hits(keys)
        return int(removed)

    async def clear(self, namespace: str | None) -> int:
        """SCAN the namespace's entries and delete them in batches; how many were deleted."""
        removed = 0
        batch: list[str] = []
        with self._boundary("clear"):
            client = self._redis()
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
            self._forget_hits([k for k in self._hits if k.startswith(f"{namespace}:")])
        return removed

    async def _delete_entry_keys(self, client: aioredis.Redis, ekeys: list[str]) -> int:
        marker = len(f"{self.prefix}e:")
        hkeys = [self._hkey(ekey[marker:]) for ekey in ekeys]
        pipe = client.pipeline(transaction=False)
        pipe.delete(*ekeys)
        pipe.delete(*hkeys)
        removed, _ = await pipe.execute()
        return int(removed)

    async def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        """Every live entry of ``namespace`` (all when ``None``), newest first."""
        marker = len(f"{self.prefix}e:")
        found: list[tuple[str, Entry]] = []
        batch: list[str] = []
        with self._boundary("scan"):
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
        # Namespaces never hold glob characters (keys.validate_namespace); the prefix may.
        pattern = f"{self._glob_prefix}e:{'*' if namespace is None else namespace + ':*'}"
        async for raw in self._redis().scan_iter(match=pattern, count=_SCAN_COUNT):
            yield raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw

    def note_hit(self, key: str, now: float) -> None:
        """Count a hit in memory; a background task flushes the counts in one script call."""
        count, _ = self._hits.get(key, (0, now))
        self._hits[key] = (count + 1, now)
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(_HIT_FLUSH_DELAY)
            await self._flush_hits()
        except BackendError as exc:  # bookkeeping only: never worth failing anything for
            log.debug("dropped hit bookkeeping for %s: %s", self.url, exc)
        finally:
            if self._flush_task is asyncio.current_task():
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
        with self._boundary("record hits"):
            client = self._redis()
            await self._script(client, _FLUSH_HITS_LUA)(keys=keys, args=args)

    def _forget_hits(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._hits.pop(key, None)

    # -- leases (redis_leases.py) -------------------------------------------------------------

    def leases(self) -> RedisLeases:
        """Cross-process (and cross-machine) leases on this store's keys."""
        if self._leases is None:
            self._leases = RedisLeases(self)
        return self._leases

    def _script(self, client: aioredis.Redis, source: str) -> AsyncScript:
        """A registered script (EVALSHA, loaded again by redis-py if the server lost it)."""
        script = self._scripts.get(source)
        if script is None or script.registered_client is not client:
            script = self._scripts[source] = client.register_script(source)
        return script


def _pack(entry: Entry) -> bytes:
    meta = json.dumps(dict(entry.meta), separators=(",", ":")).encode() if entry.meta else b""
    material = b"" if entry.material is None else entry.material.encode("utf-8", "surrogatepass")
    head = _HEAD.pack(
        entry.created_at,
        math.nan if entry.expires_at is None else entry.expires_at,
        entry.call_seconds,
        len(meta),
        _NO_MATERIAL if entry.material is None else len(material),
    )
    return b"".join((_ENVELOPE, head, meta, material, entry.value))


def _unpack(key: str, blob: bytes, hits: bytes | None) -> Entry | None:
    """The Entry of an envelope, or None (logged) if it is not one we wrote."""
    try:
        if blob[:1] != _ENVELOPE:
            raise ValueError(f"unknown envelope byte {blob[:1]!r}")
        created_at, expires_at, call_seconds, meta_len, material_len = _HEAD.unpack_from(blob, 1)
        at = 1 + _HEAD.size
        meta = json.loads(blob[at : at + meta_len]) if meta_len else {}
        at += meta_len
        material = None
        if material_len != _NO_MATERIAL:
            material = blob[at : at + material_len].decode("utf-8", "surrogatepass")
            at += material_len
        count, last = 0, None
        if hits:
            count_s, last_s = hits.split(b" ", 1)
            count, last = int(count_s), float(last_s)
        return Entry(
            value=blob[at:],
            created_at=created_at,
            expires_at=None if math.isnan(expires_at) else expires_at,
            call_seconds=call_seconds,
            material=material,
            meta=meta,
            hits=count,
            last_hit_at=last,
        )
    except (ValueError, TypeError, struct.error) as exc:
        log.warning("ignoring unreadable redis entry %s: %s", key, exc)
        return None


def from_url(parts: SplitResult) -> RedisStore:
    """``redis://[[user]:password@]host[:port][/db][?prefix=&timeout=&connect_timeout=...]``.

    ``rediss://`` is TLS; ``ssl_cert_reqs=none|optional|required`` and ``ssl_ca_certs=path``
    tune certificate checks. ``max_connections`` bounds the pool.
    """
    from . import query_options

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
