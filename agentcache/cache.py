"""AgentCache, the facade: configuration, modes, the L1 fast path, and the direct API.

The path of one ``get_or_call``:

1. The key material becomes a ``Key`` once (``keys.py``): bad material raises before anything is
   called. A prompt (a ``str``) on the default namespace is hashed inline.
2. L1, a bounded in-process LRU, is checked synchronously: a hit of an immutable answer costs no
   await and no decode.
3. Otherwise the one lookup path (``_lookup.py``) reads the store, else calls once for every
   concurrent caller and stores the answer, committed before anyone is answered.

The store is reached only through ``StoreGuard`` (``_guard.py``), which fails open: a store outage
costs one warning, a count in ``stats.errors``, and calls that go straight through for a while,
unless ``on_store_error="raise"`` (or ``replay`` mode) asks for an error instead. Exceptions from
``call_fn`` pass through unchanged and are never stored.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar, overload

from . import codec
from ._guard import StoreGuard
from ._lookup import Lookup
from ._loops import LoopBinding
from ._options import Mode, OnStoreError, parse_mode, parse_on_store_error, parse_ttl, store_from_setting
from ._request import Fetched, Request, invoke
from .errors import ConfigurationError
from .explain import Explanation, explain, fingerprints
from .keys import KEY_VERSION, Key, _str_digest, validate_namespace
from .leasing import LeasePolicy
from .stats import CacheStats, StatsRecorder
from .stores import Entry, Store, redact_url
from .stores.memory import DEFAULT_MAX_ENTRIES, MemoryStore

if TYPE_CHECKING:
    from ._decorator import CachedFunction

__all__ = ["AgentCache", "Fetched"]

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

MAX_SAMPLED_KEYS = 100_000
"""How many keys with ``samples=N`` keep a rotation counter before the counters start over."""

# Enum member access costs a class-attribute lookup each time; the hot path compares these.
_OFF = Mode.OFF
_REFRESH = Mode.REFRESH


class AgentCache:
    """An async cache for LLM calls: single-flight, persistent, exact keys.

    Args:
        url: the store: ``None`` reads ``$AGENTCACHE_URL``, else ``sqlite:///.agentcache/cache.db``
            (relative to the working directory); also ``memory://``, ``sqlite:////abs/path.db``,
            ``redis://host:6379/0``, or a ``Store``. Nothing is opened until first use.
        namespace: entries of one namespace never serve another.
        ttl: seconds (or a ``timedelta``) an entry lives; ``None``: no expiry; at most 100 years.
        mode: ``read_write`` (default), ``read_only``, ``replay``, ``refresh`` or ``off``; ``None``
            reads ``$AGENTCACHE_MODE``.
        on_store_error: ``"warn"`` fails open when the store fails; ``"raise"`` raises instead
            (``replay`` always raises).
        l1_max_entries: the in-process LRU in front of a persistent store (0: none).
        store_key_material: ``False`` stores only the hashes of keys (private prompts).
        clock: the wall clock TTLs are measured with (injectable for tests).
        lease: cross-process single-flight on misses (``None``: off).
        store_retry: seconds a failed store is skipped before one call probes it again.
        max_value_bytes: the largest value stored or read, before compression.

    Raises:
        ConfigurationError: an option, URL or namespace that cannot work, before anything runs.
    """

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
        store_retry: float = 1.0,
        max_value_bytes: int = codec.MAX_VALUE_BYTES,
    ) -> None:
        self._namespace = validate_namespace(namespace)
        self._key_prefix = f"{namespace}:{KEY_VERSION}:"
        self._ttl = parse_ttl(ttl)
        self._mode = parse_mode(mode)
        strict = parse_on_store_error(on_store_error) is OnStoreError.RAISE or self._mode is Mode.REPLAY
        if type(l1_max_entries) is not int or l1_max_entries < 0:
            raise ConfigurationError(
                f"l1_max_entries must be an int >= 0 (0 turns the in-process L1 off), not {l1_max_entries!r}"
            )
        if isinstance(store_retry, bool) or not isinstance(store_retry, (int, float)) or not store_retry >= 0:
            raise ConfigurationError(f"store_retry must be a number of seconds >= 0, not {store_retry!r}")
        if type(max_value_bytes) is not int or max_value_bytes < 1:
            raise ConfigurationError(
                f"max_value_bytes must be an int >= 1 (the largest value, in bytes before compression, "
                f"that is stored or read), not {max_value_bytes!r}"
            )
        if lease is not None and not isinstance(lease, LeasePolicy):
            raise ConfigurationError(f"lease must be a LeasePolicy or None, not {lease!r}")
        self._clock = clock
        store = store_from_setting(url)  # names $AGENTCACHE_URL when the URL came from it
        self._store = store
        self._stats = StatsRecorder()
        self._sample_turns: dict[str, int] = {}  # base stored key -> calls so far (samples=N)
        # memory:// is its own L1; a persistent store gets a bounded LRU in front of it.
        self._guard: StoreGuard | None
        if isinstance(store, MemoryStore):
            self._l1: MemoryStore | None = store
            self._guard = None
        else:
            self._l1 = MemoryStore(l1_max_entries) if l1_max_entries else None
            self._guard = StoreGuard(
                store,
                strict=strict,
                reads_only=self._mode is Mode.REPLAY,
                writes=self._mode.writes,
                retry=float(store_retry),
                stats=self._stats,
            )
        self._lookup = Lookup(
            mode=self._mode,
            guard=self._guard,
            l1=self._l1,
            stats=self._stats,
            lease=lease,
            clock=clock,
            store_key_material=store_key_material,
            max_value_bytes=max_value_bytes,
            loop_binding=LoopBinding(repr(self)),  # the flight's: one running event loop at a time
        )
        self._note_hit = self._lookup.note_hit  # bound once: the fast path runs it on every hit
        self._store_key_material = store_key_material
        self._max_value_bytes = max_value_bytes

    def __del__(self) -> None:
        # Like an unclosed file: the store's connections (and their pending hit counts) are only
        # released by aclose(). getattr: __init__ may have failed before setting the fields.
        guard = getattr(self, "_guard", None)
        if guard is not None and guard.is_open:
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
        return self._key_of(key, namespace).stored

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

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "AgentCache is asynchronous: use 'async with AgentCache(...) as cache:' inside an async "
            "function (or call 'await cache.aclose()' when done)"
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ always raises
        return None

    async def aclose(self) -> None:
        """Cancel calls still in flight, flush pending writes, close the store; idempotent.

        The cache may be used again afterwards: the store reopens lazily.
        """
        await self._lookup.close()
        if self._guard is not None:
            await self._guard.aclose()

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
        mode = self._mode
        if namespace is None and samples == 1 and type(key) is str:
            # The hot path, inlined: an L1 hit of an immutable answer (the usual str) costs a
            # hash, a dict lookup and a few counters; no await, no decode.
            skey = self._key_prefix + _str_digest(key)
            l1 = self._l1
            if l1 is not None and mode is not _REFRESH and mode is not _OFF:
                now = self._clock()
                slot = l1.lookup(skey, now)
                if slot is not None:
                    entry, memo = slot
                    if memo is not None and memo[0] is value_type:
                        self._stats.hit(entry.call_seconds, entry.meta, label)
                        self._note_hit(skey, now)
                        return memo[1]  # type: ignore[no-any-return]
                    found = self._lookup.from_l1(skey, value_type, label, now, slot)
                    if found is not None:
                        return found.value  # type: ignore[no-any-return]
            # L1 is checked: straight to the store and the flight.
            fetched: Fetched[T] = await self._fetch(
                Key(key, key, skey), call_fn, ttl, value_type, label, describe, check_l1=False
            )
            return fetched.value
        fetched = await self._fetch(
            self._key_of(key, namespace, samples), call_fn, ttl, value_type, label, describe
        )
        return fetched.value

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
        return await self._fetch(
            self._key_of(key, namespace, samples), call_fn, ttl, value_type, label, describe
        )

    async def _fetch(
        self,
        key: Key,
        call_fn: Callable[[Any], Awaitable[T]],
        ttl: float | timedelta | None,
        value_type: Any,
        label: str | None,
        describe: Callable[[T], Mapping[str, Any]] | None,
        *,
        check_l1: bool = True,
    ) -> Fetched[T]:
        """Past the inlined fast path: L1 (unless the caller looked already), then the lookup."""
        mode = self._mode
        if check_l1 and mode is not _REFRESH and mode is not _OFF:
            found = self._lookup.from_l1(key.stored, value_type, label, self._clock())
            if found is not None:
                return found
        if mode is _OFF:
            return Fetched(await invoke(call_fn, key.material), "call", key.stored, None)
        req = Request(key, call_fn, self._ttl if ttl is None else parse_ttl(ttl), value_type, label, describe)
        try:
            return await self._lookup.fetch(req)
        finally:
            if req.messages is not None:
                req.emit()

    def _key_of(self, material: object, namespace: str | None, samples: int = 1) -> Key:
        """The ``Key`` of ``material`` (of its turn's sample slot when ``samples`` > 1)."""
        ns = self._namespace if namespace is None else validate_namespace(namespace)
        key = Key.of(material, ns)
        if samples == 1:
            return key
        if type(samples) is not int or samples < 1:
            raise ConfigurationError(f"samples must be a positive int, not {samples!r}")
        # Calls of a key take the slots in turn (0, 1, ..., N-1, 0, ...): the first N fill them,
        # later ones are served in rotation. Slot 0 is the plain key, so samples=1 entries are
        # reused as the first sample; call_fn still receives the caller's own key material.
        turns = self._sample_turns
        turn = turns.get(key.stored, 0)
        if len(turns) >= MAX_SAMPLED_KEYS and key.stored not in turns:
            turns.clear()  # a bound, not a policy: rotation restarts at slot 0
        turns[key.stored] = turn + 1
        slot = turn % samples
        return key.sample(slot) if slot else key

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
        k = self._key_of(key, namespace)
        if self._mode is _OFF:
            return default
        req = Request(k, _never_called, None, value_type, None, None)
        try:
            found = await self._lookup.peek(req)
        finally:
            if req.messages is not None:
                req.emit()
        return default if found is None else found.value

    async def set(
        self,
        key: object,
        value: Any,
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        value_type: Any = None,
    ) -> None:
        """Store ``value`` under ``key``; raises ``UnstorableValueError`` if it cannot be.

        Fails open like a miss's write: a store failure is warned and counted, not raised.
        """
        k = self._key_of(key, namespace)
        if not self._writable("set"):
            return
        ttl_seconds = self._ttl if ttl is None else parse_ttl(ttl)
        data = codec.encode(value, value_type, max_bytes=self._max_value_bytes)
        now = self._clock()
        entry = Entry(
            value=data,
            created_at=now,
            expires_at=None if ttl_seconds is None else now + ttl_seconds,
            material=k.canonical if self._store_key_material else None,
            meta=fingerprints(k.normal),
        )
        req = Request(k, _never_called, ttl_seconds, value_type, None, None)
        self._lookup.invalidate()
        if self._guard is not None:
            await self._guard.write([(k.stored, entry)], None, req)
            if req.messages is not None:
                req.emit()
        self._lookup.remember(k.stored, entry, value, value_type, decoded=False)

    async def delete(self, key: object, *, namespace: str | None = None) -> bool:
        """Remove ``key``'s entry; True if there was one. Store errors raise ``BackendError``."""
        skey = self._key_of(key, namespace).stored
        if not self._writable("delete"):
            return False
        self._lookup.invalidate()
        removed = self._l1.discard(skey) if self._l1 is not None else False
        if self._guard is not None:
            store = await self._guard.open_or_raise()
            removed = bool(await store.delete_many([skey])) or removed
        return removed

    async def clear(self, namespace: str | None = None) -> int:
        """Remove every entry of ``namespace`` (default: this cache's); return how many."""
        ns = self._namespace if namespace is None else validate_namespace(namespace)
        if not self._writable("clear"):
            return 0
        self._lookup.invalidate()
        removed = self._l1.discard_namespace(ns) if self._l1 is not None else 0
        if self._guard is not None:
            store = await self._guard.open_or_raise()
            removed = await store.clear(ns)
        return removed

    async def explain(self, key: object, *, namespace: str | None = None, limit: int = 3) -> Explanation:
        """The stored entries nearest to ``key`` and what differs (README: Why did this miss?)."""
        k = self._key_of(key, namespace)
        if self._guard is None:
            assert self._l1 is not None  # memory:// is its own L1
            return await explain(self._l1, k.stored, k.normal, now=self._clock(), limit=limit)
        store = await self._guard.open_or_raise()
        return await explain(store, k.stored, k.normal, now=self._clock(), limit=limit)

    @overload
    def cached(
        self,
        fn: Callable[P, Awaitable[R]],
        /,
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        ignore: tuple[str, ...] = (),
        key: Callable[..., object] | None = None,
        name: str | None = None,
    ) -> CachedFunction[P, R]: ...

    @overload
    def cached(
        self,
        fn: None = None,
        /,
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        ignore: tuple[str, ...] = (),
        key: Callable[..., object] | None = None,
        name: str | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]: ...

    def cached(
        self,
        fn: Callable[P, Awaitable[R]] | None = None,
        /,
        *,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        ignore: tuple[str, ...] = (),
        key: Callable[..., object] | None = None,
        name: str | None = None,
    ) -> CachedFunction[P, R] | Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]:
        """Decorate an async function so its calls go through ``get_or_call`` (README: Decorator).

        ``@cache.cached`` and ``@cache.cached(ttl=...)`` both work; ``ignore``, ``name`` and ``key``
        are described in ``agentcache._decorator``.
        """
        from ._decorator import cached_function

        def decorate(func: Callable[P, Awaitable[R]]) -> CachedFunction[P, R]:
            return cached_function(
                self, func, ttl=ttl, namespace=namespace, ignore=ignore, key=key, name=name
            )

        return decorate(fn) if fn is not None else decorate

    def _writable(self, action: str) -> bool:
        """False in ``off`` mode (bypassed: nothing is written); raises in modes that never write."""
        if self._mode is _OFF:
            return False
        if not self._mode.writes:
            raise ConfigurationError(
                f"cannot {action} in mode {self._mode.value!r}, which never writes; "
                "open the cache with mode='read_write'"
            )
        return True


async def _never_called(_key: object) -> NoReturn:  # pragma: no cover - get/set make no calls
    raise AssertionError("get() and set() never call upstream")
