"""AgentCache: key -> L1 -> flight -> store -> call -> store, with modes, TTLs, fail-open and stats.

The path of one ``get_or_call``:

1. The key material is canonicalised and hashed (``keys.py``); bad material raises before anything
   is called.
2. L1 (a bounded in-process LRU) is checked synchronously: a hit costs no await and no thread hop.
3. Otherwise the caller joins the single flight of that key (``flight.py``). The flight reads the
   persistent store (micro-batched with concurrent readers), and on a miss calls ``call_fn``,
   stores the encoded answer (committed before anyone is answered) and fills L1.
4. Each caller gets its own copy of a mutable answer, decoded from the stored bytes; immutable
   answers (str, numbers) are shared.

Store failures fail open: the call goes through, one ``AgentCacheWarning`` per outage, and
``stats.errors`` counts each failure; ``on_store_error="raise"`` (and ``replay`` mode) raise
instead. A store that could not be opened is retried after ``REOPEN_SECONDS``. Exceptions from
``call_fn`` pass through unchanged and are never stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from . import codec
from ._options import (
    Mode,
    OnStoreError,
    parse_mode,
    parse_on_store_error,
    parse_ttl,
    resolve_url,
)
from .errors import (
    AgentCacheWarning,
    BackendError,
    CacheMissError,
    ConfigurationError,
    UnstorableValueError,
)
from .explain import Explanation, explain, fingerprints_of
from .flight import SingleFlight
from .keys import KEY_VERSION, _str_digest, canonical_json, digest, normalize, validate_namespace
from .stats import CacheStats, StatsRecorder
from .stores import Entry, Store, open_store, redact_url
from .stores.leases import LeasePolicy, lease_store_of, run_leased
from .stores.memory import DEFAULT_MAX_ENTRIES, NO_MEMO, MemoryStore

__all__ = ["AgentCache", "Fetched"]

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

REOPEN_SECONDS = 1.0
"""How long a store that failed is left alone (calls go straight through) before the next try."""

MAX_SAMPLED_KEYS = 100_000
"""How many keys with ``samples=N`` keep a rotation counter before the counters start over."""

Source = Literal["l1", "store", "call", "coalesced"]


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """One answer and where it came from: ``l1``, ``store``, ``call`` or ``coalesced``."""

    value: T
    source: Source
    key: str
    entry: Entry | None

    @property
    def hit(self) -> bool:
        """Served without an upstream call of its own (from L1, the store, or a shared call)."""
        return self.source != "call"


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a flight hands to each of its callers."""

    value: Any
    entry: Entry | None  # None: the value could not be encoded, callers share the object
    source: Literal["store", "call"]


class AgentCache:
    """An async cache for LLM calls: single-flight, persistent, exact keys. See the README."""

    def __init__(
        self,
        url: str | Store | None = None,
        *,
        namespace: str = "default",
        ttl: float | timedelta | None = None,
        mode: Mode | str | None = None,
        on_store_error: OnStoreError | str = OnStoreError.WARN,
        l1_max_entries: int = DEFAULT_MAX_ENTRIES,
        store_key_material: bool = True,
        clock: Callable[[], float] = time.time,
        lease: LeasePolicy | None = LeasePolicy(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        self._namespace = validate_namespace(namespace)
        self._key_prefix = f"{namespace}:{KEY_VERSION}:"
        self._ttl = parse_ttl(ttl)
        self._mode = parse_mode(mode)
        self._on_store_error = parse_on_store_error(on_store_error)
        self._store_key_material = store_key_material
        self._clock = clock
        self._lease = lease  # cross-process single-flight on stores with leases; None: off
        store = open_store(resolve_url(url)) if url is None or isinstance(url, str) else url
        if not isinstance(store, Store):
            raise ConfigurationError(f"url must be a store URL or a Store, not {url!r}")
        self._store = store
        # memory:// is its own L1; a persistent store gets a bounded LRU in front of it.
        if isinstance(store, MemoryStore):
            self._l1: MemoryStore | None = store
            self._persistent: Store | None = None
        else:
            self._l1 = MemoryStore(l1_max_entries) if l1_max_entries else None
            self._persistent = store
        self._flight: SingleFlight[_Outcome] = SingleFlight()
        self._cold_reads: set[str] = set()  # keys a caller is reading from the store right now
        self._stats = StatsRecorder()
        self._open_lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._store_open = self._persistent is None
        self._reopen_at = 0.0
        self._in_outage = False
        self._sample_turns: dict[str, int] = {}  # base stored key -> calls so far (samples=N)

    def __del__(self) -> None:
        # Like an unclosed file: the store's connections (and their pending hit counts) are only
        # released by aclose(). getattr: __init__ may have failed before setting the fields.
        if getattr(self, "_persistent", None) is not None and getattr(self, "_store_open", False):
            warnings.warn(
                f"{self!r} was garbage-collected unclosed; use 'async with cache:' or 'await cache.aclose()'",
                ResourceWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return (
            f"AgentCache({redact_url(self._store.url)!r}, namespace={self._namespace!r}, "
            f"mode={self._mode.value!r})"
        )

    # -- properties --------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The backing store."""
        return self._store

    @property
    def namespace(self) -> str:
        """The default namespace of this cache's keys."""
        return self._namespace

    @property
    def mode(self) -> Mode:
        """The cache's mode (``Mode`` is a ``str`` enum: compare with ``"replay"`` etc.)."""
        return self._mode

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters (hits, misses, coalesced, stores, errors, saved_*)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start counting from zero."""
        self._stats.reset()

    def key(self, key: object, namespace: str | None = None) -> str:
        """The stored key of ``key``: ``"<namespace>:v1:<sha256 hex>"``."""
        ns = self._namespace if namespace is None else validate_namespace(namespace)
        return f"{ns}:{KEY_VERSION}:{digest(key)}"

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> AgentCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel calls still in flight, flush pending writes, close the store; idempotent.

        The cache may be used again afterwards: the store reopens lazily.
        """
        self._flight.cancel_all()
        if self._persistent is not None and self._store_open:
            self._store_open = False
            try:
                await self._persistent.aclose()
            except BackendError as exc:
                log.debug("closing %s failed: %s", redact_url(self._store.url), exc)

    # -- the main path -----------------------------------------------------------------------

    async def get_or_call(
        self,
        key: object,
        call_fn: Callable[[Any], Awaitable[T]],
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        value_type: Any = None,
        label: str | None = None,
        describe: Callable[[T], Mapping[str, Any]] | None = None,
        samples: int = 1,
    ) -> T:
        """The stored answer for ``key``, or ``await call_fn(key)`` once for all concurrent callers."""
        if samples != 1:
            ns = self._namespace if namespace is None else validate_namespace(namespace)
            key, call_fn = self._sample(key, call_fn, samples, ns)
        if namespace is None:
            skey = self._key_prefix + (_str_digest(key) if type(key) is str else digest(key))
        else:
            skey = f"{validate_namespace(namespace)}:{KEY_VERSION}:{digest(key)}"
        mode = self._mode
        if mode is _OFF:
            return await call_fn(key)
        l1 = self._l1
        if l1 is not None and mode is not _REFRESH:
            # The hot path, inlined: an L1 hit of an immutable answer (the usual str) costs a
            # hash, a dict lookup and a few counters; no await, no decode.
            now = self._clock()
            slot = l1.lookup(skey, now)
            if slot is not None:
                entry, memo = slot
                if memo is not NO_MEMO and memo[0] is value_type:  # type: ignore[index]
                    self._stats.hit(entry.call_seconds, entry.meta, label)
                    (self._persistent or l1).note_hit(skey, now)
                    return memo[1]  # type: ignore[index,no-any-return]
                value = self._l1_value(skey, entry, value_type, label, now)
                if value is not _CORRUPT:
                    return value  # type: ignore[no-any-return]
        return (await self._fetch(skey, key, call_fn, ttl, value_type, label, describe))[0]  # type: ignore[no-any-return]

    async def fetch(
        self,
        key: object,
        call_fn: Callable[[Any], Awaitable[T]],
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        value_type: Any = None,
        label: str | None = None,
        describe: Callable[[T], Mapping[str, Any]] | None = None,
        samples: int = 1,
    ) -> Fetched[T]:
        """Like ``get_or_call``, and says where the answer came from (for integrations)."""
        ns = self._namespace if namespace is None else validate_namespace(namespace)
        if samples != 1:
            key, call_fn = self._sample(key, call_fn, samples, ns)
        skey = f"{ns}:{KEY_VERSION}:{digest(key)}"
        if self._mode is _OFF:
            return Fetched(await call_fn(key), "call", skey, None)
        if self._mode is not _REFRESH and self._l1 is not None:
            now = self._clock()
            slot = self._l1.lookup(skey, now)
            if slot is not None:
                value = self._l1_value(skey, slot[0], value_type, label, now)
                if value is not _CORRUPT:
                    return Fetched(value, "l1", skey, slot[0])
        value, source, entry = await self._fetch(skey, key, call_fn, ttl, value_type, label, describe)
        return Fetched(value, source, skey, entry)

    def _l1_value(self, skey: str, entry: Entry, value_type: Any, label: str | None, now: float) -> Any:
        """Serve an L1 entry whose decoded value is not kept (mutable, or another value_type)."""
        value = self._decode_or_drop(skey, entry, value_type, label)
        if value is not _CORRUPT:
            self._count_hit(skey, entry, label, now)
            self._remember(skey, entry, value, value_type)
        return value

    async def _fetch(
        self,
        skey: str,
        key: object,
        call_fn: Callable[[Any], Awaitable[T]],
        ttl: float | timedelta | None,
        value_type: Any,
        label: str | None,
        describe: Callable[[T], Mapping[str, Any]] | None,
    ) -> tuple[Any, Source, Entry | None]:
        """Past L1: the store, else the single flight. Returns (value, source, entry)."""
        ttl_seconds = self._ttl if ttl is None else parse_ttl(ttl)
        store = self._persistent
        read_done = False
        if (
            store is not None
            and self._store_open
            and self._mode is not _REFRESH
            and skey not in self._flight
            and skey not in self._cold_reads
            and not self._reopen_at
        ):
            # A cold hit is served in the caller's own task: its read joins the next batched
            # query, with no flight task and no extra loop turns. Only a miss starts a flight,
            # which then need not read again. Callers arriving during this read go straight to
            # the flight instead of each reading too (a stampede of identical calls).
            self._cold_reads.add(skey)
            try:
                entry = await self._read(store, skey, label)
            finally:
                self._cold_reads.discard(skey)
            if entry is not None:
                value = self._decode_or_drop(skey, entry, value_type, label)
                if value is not _CORRUPT:
                    if self._l1 is not None:
                        self._remember(skey, entry, value, value_type)
                    self._count_hit(skey, entry, label, self._clock())
                    return value, "store", entry
                await self._delete_stored(store, skey, label)
            read_done = True

        def start() -> Awaitable[_Outcome]:
            return self._fill(
                skey, key, call_fn, ttl_seconds, value_type, label, describe, read_done=read_done
            )

        outcome, shared = await self._flight.do(skey, start)
        entry = outcome.entry
        if not shared:
            if outcome.source == "call":
                self._stats.miss(label)
                return outcome.value, "call", entry
            self._count_hit(skey, entry, label, self._clock())  # type: ignore[arg-type]
            return outcome.value, "store", entry
        # A follower: its own copy of anything mutable, decoded from the stored bytes.
        value = outcome.value
        if entry is not None and not isinstance(value, codec.IMMUTABLE):
            try:
                value = codec.decode(entry.value, value_type)
            except codec.CorruptValue:
                value = outcome.value  # another value_type than the leader's; share instead
        if outcome.source == "call":
            if entry is None:
                self._stats.coalesced(0.0, _NO_META, label)
            else:
                self._stats.coalesced(entry.call_seconds, entry.meta, label)
            return value, "coalesced", entry
        self._count_hit(skey, entry, label, self._clock())  # type: ignore[arg-type]
        return value, "store", entry

    def _sample(
        self, key: object, call_fn: Callable[[Any], Awaitable[T]], samples: int, ns: str
    ) -> tuple[object, Callable[[Any], Awaitable[T]]]:
        """This call's slot among the ``samples`` answers kept for ``key`` (README: samples).

        Calls of a key take the slots in turn (0, 1, ..., N-1, 0, ...): the first N fill them, later
        ones are served in rotation. Slot 0 is the plain key, so ``samples=1`` entries are reused as
        the first sample; ``call_fn`` still receives the caller's own key.
        """
        if type(samples) is not int or samples < 1:
            raise ConfigurationError(f"samples must be a positive int, not {samples!r}")
        turns = self._sample_turns
        base = f"{ns}:{digest(key)}"
        turn = turns.get(base, 0)
        if len(turns) >= MAX_SAMPLED_KEYS and base not in turns:
            turns.clear()  # a bound, not a policy: rotation restarts at slot 0
        turns[base] = turn + 1
        slot = turn % samples
        if slot == 0:
            return key, call_fn

        async def call_with_own_key(_slot_key: object) -> T:
            return await call_fn(key)

        return {"agentcache:sample": slot, "key": key}, call_with_own_key

    async def _fill(
        self,
        skey: str,
        key: object,
        call_fn: Callable[[Any], Awaitable[Any]],
        ttl_seconds: float | None,
        value_type: Any,
        label: str | None,
        describe: Callable[[Any], Mapping[str, Any]] | None,
        *,
        read_done: bool = False,
    ) -> _Outcome:
        """The body of a flight: read the store, else call and store. Runs in its own task."""
        mode = self._mode
        store = await self._usable_store(label)
        if mode is not _REFRESH and store is not None and not read_done:
            found = await self._read_outcome(store, skey, value_type, label)
            if found is not None:
                return found
        if mode is Mode.REPLAY:
            raise CacheMissError(skey, key, await self._explain_miss(skey, key))

        def call() -> Awaitable[_Outcome]:
            return self._call_and_store(store, skey, key, call_fn, ttl_seconds, value_type, label, describe)

        if (
            mode is Mode.READ_WRITE
            and store is not None
            and self._lease is not None
            and (leases := lease_store_of(store)) is not None
        ):
            # Other processes may be calling this key too: hold its lease, or wait for their value.
            persistent = store
            return await run_leased(
                leases,
                skey,
                self._lease,
                call=call,
                recheck=lambda: self._read_outcome(persistent, skey, value_type, label),
            )
        return await call()

    async def _read_outcome(
        self, store: Store, skey: str, value_type: Any, label: str | None
    ) -> _Outcome | None:
        """The stored answer (put in L1 too), or ``None`` if missing, unreadable or the store failed."""
        entry = await self._read(store, skey, label)
        if entry is not None:
            value = self._decode_or_drop(skey, entry, value_type, label)
            if value is _CORRUPT:
                await self._delete_stored(store, skey, label)
            else:
                if self._l1 is not None:
                    self._remember(skey, entry, value, value_type)
                return _Outcome(value, entry, "store")
        return None

    async def _call_and_store(
        self,
        store: Store | None,
        skey: str,
        key: object,
        call_fn: Callable[[Any], Awaitable[Any]],
        ttl_seconds: float | None,
        value_type: Any,
        label: str | None,
        describe: Callable[[Any], Mapping[str, Any]] | None,
    ) -> _Outcome:
        """Call upstream, then store the answer (committed) and remember it in L1."""
        mode = self._mode
        started = time.perf_counter()
        value = await call_fn(key)
        elapsed = time.perf_counter() - started
        entry = self._make_entry(key, value, value_type, ttl_seconds, elapsed, label, describe)
        if entry is not None and mode.writes:
            if store is not None and await self._write(store, [(skey, entry)], label):
                self._stats.stored(label)
            elif store is None and self._persistent is None:
                self._stats.stored(label)  # memory:// is the store
            if self._l1 is not None:
                self._remember(skey, entry, value, value_type)
        return _Outcome(value, entry, "call")

    def _make_entry(
        self,
        key: object,
        value: Any,
        value_type: Any,
        ttl_seconds: float | None,
        elapsed: float,
        label: str | None,
        describe: Callable[[Any], Mapping[str, Any]] | None,
    ) -> Entry | None:
        try:
            data = codec.encode(value, value_type)
        except UnstorableValueError as exc:
            self._stats.error(label)
            warnings.warn(
                f"agentcache could not store the answer (it was still returned): {exc}",
                AgentCacheWarning,
                stacklevel=4,
            )
            return None
        meta: dict[str, Any] = dict(describe(value)) if describe is not None else {}
        if label is not None:
            meta.setdefault("label", label)
        meta.update(fingerprints_of(key))  # what lets explain() find near misses by index
        now = self._clock()
        return Entry(
            value=data,
            created_at=now,
            expires_at=None if ttl_seconds is None else now + ttl_seconds,
            call_seconds=elapsed,
            material=canonical_json(key) if self._store_key_material else None,
            meta=meta,
        )

    # -- direct access -----------------------------------------------------------------------

    async def get(
        self,
        key: object,
        default: Any = None,
        *,
        namespace: str | None = None,
        value_type: Any = None,
    ) -> Any:
        """The stored answer for ``key``, or ``default``; calls nothing, counts nothing."""
        skey = self.key(key, namespace)
        if self._mode is Mode.OFF:
            return default
        now = self._clock()
        entry: Entry | None = None
        store: Store | None = None
        if self._l1 is not None:
            slot = self._l1.lookup(skey, now)
            entry = slot[0] if slot is not None else None
        if entry is None:
            store = await self._usable_store(None)
            if store is not None:
                entry = await self._read(store, skey, None)
        if entry is None:
            return default
        value = self._decode_or_drop(skey, entry, value_type, None)
        if value is _CORRUPT:
            if store is not None:
                await self._delete_stored(store, skey, None)
            return default
        return value

    async def set(
        self,
        key: object,
        value: Any,
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        value_type: Any = None,
    ) -> None:
        """Store ``value`` under ``key``; raises ``UnstorableValueError`` if it cannot be."""
        skey = self.key(key, namespace)
        self._require_writable("set")
        ttl_seconds = self._ttl if ttl is None else parse_ttl(ttl)
        data = codec.encode(value, value_type)
        now = self._clock()
        entry = Entry(
            value=data,
            created_at=now,
            expires_at=None if ttl_seconds is None else now + ttl_seconds,
            material=canonical_json(key) if self._store_key_material else None,
            meta=fingerprints_of(key),
        )
        store = await self._usable_store(None)
        if store is not None:
            await self._write(store, [(skey, entry)], None)
        if self._l1 is not None:
            self._remember(skey, entry, value, value_type)

    async def delete(self, key: object, *, namespace: str | None = None) -> bool:
        """Remove ``key``'s entry; True if there was one. Store errors raise ``BackendError``."""
        skey = self.key(key, namespace)
        self._require_writable("delete")
        removed = self._l1.discard(skey) if self._l1 is not None else False
        if self._persistent is not None:
            await self._open_or_raise()
            removed = bool(await self._persistent.delete_many([skey])) or removed
        return removed

    async def clear(self, namespace: str | None = None) -> int:
        """Remove every entry of ``namespace`` (default: this cache's); return how many."""
        ns = self._namespace if namespace is None else validate_namespace(namespace)
        self._require_writable("clear")
        removed = self._l1.discard_namespace(ns) if self._l1 is not None else 0
        if self._persistent is not None:
            await self._open_or_raise()
            removed = await self._persistent.clear(ns)
        return removed

    async def explain(self, key: object, *, namespace: str | None = None, limit: int = 3) -> Explanation:
        """The stored entries nearest to ``key`` and what differs (README: Why did this miss?)."""
        skey = self.key(key, namespace)
        normal = normalize(key)
        if self._persistent is None:
            assert self._l1 is not None  # memory:// is its own L1
            return await explain(self._l1, skey, normal, now=self._clock(), limit=limit)
        await self._open_or_raise()
        return await explain(self._persistent, skey, normal, now=self._clock(), limit=limit)

    async def _explain_miss(self, skey: str, key: object) -> str | None:
        """The readable explanation a replay miss carries; ``None`` if the store cannot tell."""
        store = self._persistent if self._persistent is not None else self._l1
        if store is None:
            return None
        try:
            found = await explain(store, skey, normalize(key), now=self._clock())
        except BackendError as exc:  # the miss itself is the news; say why it is unexplained
            log.debug("explaining a replay miss failed: %s", exc)
            return f"(no explanation: the store failed while searching: {exc})"
        return found.render(with_key=False)

    def cached(
        self,
        fn: F | None = None,
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        ignore: tuple[str, ...] = (),
    ) -> Any:
        """Decorate an async function so its calls go through ``get_or_call`` (README: Decorator)."""
        from ._decorator import cached_function

        def decorate(func: F) -> F:
            return cached_function(self, func, ttl=ttl, namespace=namespace, ignore=ignore)

        return decorate(fn) if fn is not None else decorate

    # -- store access, failing open ----------------------------------------------------------

    async def _usable_store(self, label: str | None) -> Store | None:
        """The persistent store, opened; ``None`` if there is none or it is down (fail-open)."""
        store = self._persistent
        if store is not None and self._reopen_at and not self._strict:
            if time.monotonic() < self._reopen_at:
                return None  # resting after a failure: fail open fast, not a timeout per call
            self._reopen_at = 0.0
        if store is None or self._store_open:
            return store
        if time.monotonic() < self._reopen_at and not self._strict:
            return None
        async with self._lock():
            if self._store_open:
                return store
            if time.monotonic() < self._reopen_at and not self._strict:
                return None  # it failed while we waited for the lock: do not each retry it
            try:
                await store.open()
            except BackendError as exc:
                self._reopen_at = time.monotonic() + REOPEN_SECONDS
                self._failed(exc, label)
                return None
            self._store_open = True
            return store

    def _lock(self) -> asyncio.Lock:
        """The open lock of the running loop (an asyncio lock binds to the first loop it waits in,
        and one cache may serve several ``asyncio.run`` calls in turn)."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._open_lock, self._lock_loop = asyncio.Lock(), loop
        return self._open_lock

    async def _open_or_raise(self) -> None:
        if self._persistent is not None and not self._store_open:
            async with self._lock():
                if not self._store_open:
                    await self._persistent.open()
                    self._store_open = True

    async def _read(self, store: Store, skey: str, label: str | None) -> Entry | None:
        try:
            (entry,) = await store.get_many([skey], self._clock())
        except BackendError as exc:
            self._failed(exc, label)
            return None
        if not self._mode.writes:
            # Where misses are written, only a write ends an outage: a full disk still serves
            # reads, and every read must not re-arm the warning for the next failed write.
            self._in_outage = False
        return entry

    async def _write(self, store: Store, items: list[tuple[str, Entry]], label: str | None) -> bool:
        try:
            await store.set_many(items)
        except BackendError as exc:
            self._failed(exc, label)
            return False
        self._in_outage = False
        return True

    @property
    def _strict(self) -> bool:
        return self._on_store_error is OnStoreError.RAISE or self._mode is Mode.REPLAY

    def _failed(self, exc: BackendError, label: str | None) -> None:
        """Count a store failure; raise it if strict, else warn once per outage and rest the store.

        Resting (``REOPEN_SECONDS``) keeps an outage from costing every call a timeout: a locked
        file would otherwise stall each call for the whole busy timeout.
        """
        self._stats.error(label)
        if not self._strict:
            self._reopen_at = time.monotonic() + REOPEN_SECONDS
        if self._strict:
            raise exc
        if not self._in_outage:
            self._in_outage = True
            warnings.warn(
                f"agentcache store {redact_url(self._store.url)} failed; calling through "
                f"without the cache until it recovers: {exc}",
                AgentCacheWarning,
                stacklevel=5,
            )
        log.debug("store failure: %s", exc)

    def _require_writable(self, action: str) -> None:
        if not self._mode.writes and self._mode is not Mode.OFF:
            raise ConfigurationError(
                f"cannot {action} in mode {self._mode.value!r}, which never writes; "
                "open the cache with mode='read_write'"
            )

    # -- L1 and decoding ---------------------------------------------------------------------

    def _remember(self, skey: str, entry: Entry, value: Any, value_type: Any) -> None:
        assert self._l1 is not None
        memo = (value_type, value) if codec.is_immutable(value) else NO_MEMO
        self._l1.put(skey, entry, memo)

    def _count_hit(self, skey: str, entry: Entry, label: str | None, now: float) -> None:
        self._stats.hit(entry.call_seconds, entry.meta, label)
        if self._persistent is not None:
            self._persistent.note_hit(skey, now)
        elif self._l1 is not None:
            self._l1.note_hit(skey, now)

    def _decode_or_drop(self, skey: str, entry: Entry, value_type: Any, label: str | None) -> Any:
        """The decoded value, or ``_CORRUPT`` after dropping an entry that cannot be read."""
        try:
            return codec.decode(entry.value, value_type)
        except codec.CorruptValue as exc:
            self._stats.error(label)
            warnings.warn(
                f"agentcache dropped an entry it could not decode ({skey}): {exc}",
                AgentCacheWarning,
                stacklevel=5,
            )
            if self._l1 is not None:
                self._l1.discard(skey)
            return _CORRUPT

    async def _evict(self, skey: str, *, reason: str) -> None:
        """Drop a stored entry an integration found unreadable: warn, count, delete (fail-open)."""
        self._stats.error(None)
        warnings.warn(
            f"agentcache dropped an entry it could not decode ({skey}): {reason}",
            AgentCacheWarning,
            stacklevel=3,
        )
        if self._l1 is not None:
            self._l1.discard(skey)
        store = await self._usable_store(None)
        if store is not None:
            await self._delete_stored(store, skey, None)

    async def _delete_stored(self, store: Store, skey: str, label: str | None) -> None:
        """Remove an entry that cannot be decoded (before anything new is written for its key)."""
        try:
            await store.delete_many([skey])
        except BackendError as exc:
            self._failed(exc, label)


_CORRUPT: Any = object()
_NO_META: Mapping[str, Any] = {}
# Enum member access costs a class-attribute lookup each time; the hot path compares these.
_OFF = Mode.OFF
_REFRESH = Mode.REFRESH
