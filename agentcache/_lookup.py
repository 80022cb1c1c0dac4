"""The one lookup path past L1: read the store, else call once and store; every path returns ``Fetched``.

``Lookup.fetch`` runs a ``Request`` (a ``Key`` computed once, the call, its options) through the
single flight (``flight.py``), whose pending lookup moves from reading to calling:

1. **reading** (in the first caller's own task): the store is read through the fail-open guard;
   the read joins the store's next batched query. A hit settles every caller that joined.
2. **calling** (in a task of its own): ``replay`` raises ``CacheMissError``; otherwise, on a store
   with leases, the call is made under the key's cross-process lease (``leasing.py``); the answer
   is encoded, committed (releasing the lease in the same commit) and remembered in L1 before
   anyone is answered.
3. Each caller gets its own ``Fetched``: its own copy of a mutable answer (decoded from the
   stored bytes), the stats of its kind (hit, miss, coalesced) and the warnings its lookup met.

A stored entry that cannot be decoded is deleted (corruption); one larger than ``max_value_bytes``
is a miss that is left in place (a cache with a larger limit may have written it) and replaced by
the answer called now; one that decodes but is not of the caller's ``value_type`` is a miss for
that caller that is neither deleted nor overwritten (another version of the app may be reading
it). Callers of one key with different ``value_type``\\s never share a lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, final

from . import codec
from ._guard import StoreGuard
from ._loops import LoopBinding
from ._notices import Notices
from ._options import Mode
from ._request import Fetched, Request, invoke
from .errors import BackendError, CacheMissError, StoreMissingError, UnstorableValueError
from .explain import explain, fingerprints
from .flight import SingleFlight
from .leasing import LeasePolicy, run_leased
from .stats import StatsRecorder
from .stores import Entry, Store
from .stores.capabilities import Lease, LeaseStore
from .stores.memory import Memo, MemoryStore

__all__ = ["Lookup"]


@final
class _Answer:
    """What a lookup hands to each of its callers: the leader's ``Fetched`` and the warnings it met.

    The warnings belong to the lookup, not to its leader: whichever caller is answered first warns
    them (the leader may have left before the call met a store outage).
    """

    __slots__ = ("fetched", "notices")

    def __init__(self, fetched: Fetched[Any], notices: Notices) -> None:
        self.fetched = fetched
        self.notices = notices


def _flight_key(skey: str, value_type: object) -> Hashable:
    """Callers of one key with equal value_types share a lookup; other value_types never do."""
    if value_type is None:
        return skey
    try:
        hash(value_type)
    except TypeError:
        return (skey, id(value_type))  # alive as long as the lookup: its Request holds it
    return (skey, value_type)


def _same_type(memo_type: object, value_type: object) -> bool:
    """Whether an L1 memo decoded for ``memo_type`` serves ``value_type`` (``list[int]`` is new per call)."""
    if memo_type is value_type:
        return True
    try:
        return bool(memo_type == value_type)
    except Exception:  # an exotic type expression that cannot be compared
        return False


@final
class _LeasedMiss:
    """One miss as ``leasing.run_leased`` drives it (``leasing.LeasedCall``)."""

    __slots__ = ("guard", "lookup", "req")

    def __init__(self, lookup: Lookup, guard: StoreGuard, req: Request) -> None:
        self.lookup, self.guard, self.req = lookup, guard, req

    def leases(self) -> LeaseStore | None:
        return self.guard.leases(self.req)

    async def call(self, lease: Lease) -> Fetched[Any]:
        return await self.lookup._call_and_store(self.req, lease)

    async def recheck(self) -> Fetched[Any] | None:
        return await self.lookup._recheck(self.req)

    def failed(self, exc: BackendError) -> None:
        self.guard.failed(exc, self.req.label, self.req, writing=True)

    def gave_up(self, waited: float) -> None:
        self.req.add(
            f"agentcache waited {waited:g}s for another process's call of {self.req.key.stored}; "
            "calling through (raise LeasePolicy.max_wait if such calls take longer)"
        )


_REPLAY, _READ_WRITE = Mode.REPLAY, Mode.READ_WRITE  # an enum member lookup costs a call each time
_CORRUPT: Final = object()
_UNUSABLE: Final = object()  # an L1 slot the full lookup path must look at
_MISMATCH: Final = object()
_OVERSIZED: Final = object()
_NO_META: Mapping[str, Any] = {}


@final
class Lookup:
    """Past L1: the store, else one call for every concurrent caller of a key."""

    __slots__ = (
        "_call_second",
        "_clock",
        "_epoch",
        "_flight",
        "_guard",
        "_l1",
        "_lease",
        "_max_value_bytes",
        "_mode",
        "_read_first",
        "_stats",
        "_store_key_material",
        "_writes",
        "note_hit",
    )

    def __init__(
        self,
        *,
        mode: Mode,
        guard: StoreGuard | None,
        l1: MemoryStore | None,
        stats: StatsRecorder,
        lease: LeasePolicy | None,
        clock: Callable[[], float],
        store_key_material: bool,
        max_value_bytes: int = codec.MAX_VALUE_BYTES,
        loop_binding: LoopBinding | None = None,
    ) -> None:
        self._mode = mode
        self._writes = mode.writes  # fixed per cache; an enum property costs a lookup per miss
        # Bound once: a caller that joins a lookup makes no objects it will not use.
        reads = self._read if guard is not None else self._read_memory
        self._read_first = reads if mode is not Mode.REFRESH else None  # refresh never reads
        self._call_second = self._call
        self._guard = guard  # None: memory:// is the store, and it is the L1
        self._l1 = l1
        self._stats = stats
        self._lease = lease
        self._clock = clock
        self._store_key_material = store_key_material
        self._max_value_bytes = max_value_bytes
        self._flight: SingleFlight[_Answer] = SingleFlight(loop_binding)
        # The store's hit bookkeeping (memory:// is its own store). It is a write too: modes that
        # never write (replay, read_only) keep none. The facade's fast path calls it as well.
        self.note_hit: Callable[[str, float], None] = _no_bookkeeping
        if guard is not None and mode.writes:
            self.note_hit = guard.store.note_hit
        elif guard is None and l1 is not None:
            self.note_hit = l1.note_hit
        # Bumped by every direct write (set, delete, clear): a store read that began before one
        # must not put what it read into L1 afterwards (a deleted entry would come back).
        self._epoch = 0

    def __len__(self) -> int:
        """How many lookups are pending (reading or calling)."""
        return len(self._flight)

    async def close(self) -> None:
        """Cancel every call in flight and wait for their cleanup (leases handed back)."""
        cancelled = self._flight.cancel_all()
        if cancelled:
            await asyncio.gather(*cancelled, return_exceptions=True)

    def invalidate(self) -> None:
        """A direct write happened: reads begun before it do not fill L1."""
        self._epoch += 1

    async def fetch(self, req: Request) -> Fetched[Any]:
        """The answer for ``req``: from the store, a shared call, or a call of its own."""
        skey = req.key.stored
        answer, shared = await self._flight.run(
            skey if req.value_type is None else _flight_key(skey, req.value_type),
            self._read_first,
            self._call_second,
            req,
        )
        if answer.notices.messages is not None:
            answer.notices.emit()
        return self._for_caller(req, answer.fetched, shared)

    async def peek(self, req: Request) -> Fetched[Any] | None:
        """The stored answer without calling or counting (``get``), or ``None``."""
        skey = req.key.stored
        slot = self._l1.lookup(skey, self._clock()) if self._l1 is not None else None
        if slot is not None:
            value = self._l1_value(skey, slot, req.value_type)
            if value is not _UNUSABLE:
                return Fetched(value, "l1", skey, slot[0])
        found = None if self._guard is None else await self._read(req)
        return None if found is None else found.fetched

    # -- L1 ------------------------------------------------------------------------------------

    def from_l1(
        self,
        skey: str,
        value_type: Any,
        label: str | None,
        now: float,
        slot: tuple[Entry, Memo | None] | None = None,
    ) -> Fetched[Any] | None:
        """An L1 hit (decoded for this caller), or ``None`` to take the full path.

        ``slot``: what the caller already looked up in L1 (the facade's fast path), so that a hit
        of a mutable answer costs one lookup, not two.
        """
        if slot is None:
            slot = self._l1.lookup(skey, now) if self._l1 is not None else None
            if slot is None:
                return None
        value = self._l1_value(skey, slot, value_type)
        if value is _UNUSABLE:
            return None
        entry = slot[0]
        if slot[1] is None or slot[1][1] is not value:
            self.remember(skey, entry, value, value_type)
        self.count_hit(skey, entry, label, now)
        return Fetched(value, "l1", skey, entry)

    def _l1_value(self, skey: str, slot: tuple[Entry, Memo | None], value_type: Any) -> object:
        """The value of an L1 slot for ``value_type``; ``_UNUSABLE`` if the full path must decide.

        Damaged bytes leave L1 (the full path reads the store, warns, and deletes); an entry of
        another ``value_type`` stays (the full path says so, once).
        """
        entry, memo = slot
        if memo is not None and _same_type(memo[0], value_type):
            return memo[1]
        try:
            return codec.decode(entry.value, value_type, max_bytes=self._max_value_bytes)
        except codec.OversizedValue:  # written by a cache with a larger limit (memory:// is shared)
            return _UNUSABLE
        except codec.CorruptValue:
            if self._l1 is not None:
                self._l1.discard(skey)
            return _UNUSABLE
        except codec.WrongValueType:
            return _UNUSABLE

    def remember(
        self, skey: str, entry: Entry, value: object, value_type: object, *, decoded: bool = True
    ) -> None:
        """Put an entry in L1, keeping its decoded value when callers may share it.

        ``decoded=False``: ``value`` is what ``call_fn`` returned, which a ``value_type`` may read
        back differently (an int answer under ``value_type=float`` is 1.0 from the store): the
        memo holds what every later hit returns, decoded from the stored bytes.
        """
        if self._l1 is None:
            return
        if codec.is_immutable(value) and not decoded and value_type is not None:
            try:
                value = codec.decode(entry.value, value_type, max_bytes=self._max_value_bytes)
            except (codec.CorruptValue, codec.WrongValueType):
                self._l1.put(skey, entry, None)
                return
        self._l1.put(skey, entry, (value_type, value) if codec.is_immutable(value) else None)

    def count_hit(self, skey: str, entry: Entry, label: str | None, now: float) -> None:
        """Count a hit in stats and in the store's bookkeeping."""
        self._stats.hit(entry.call_seconds, entry.meta, label)
        self.note_hit(skey, now)

    # -- reading -------------------------------------------------------------------------------

    async def _read(self, req: Request) -> _Answer | None:
        """The stored answer (remembered in L1), or ``None``: missing, unreadable, or the store is down."""
        guard = self._guard
        assert guard is not None
        skey = req.key.stored
        epoch = self._epoch
        try:
            found = await guard.read([skey], self._clock(), req.label, req)
        except StoreMissingError as exc:
            if self._mode is not Mode.REPLAY:
                raise
            req.missing = str(exc)
            return None
        entry = found[0] if found else None
        if entry is None:
            return None
        value = self._decode(req, entry)
        if value is _CORRUPT:
            if self._writes:  # read_only and replay never write, not even to tidy up
                await guard.delete([skey], req.label, req)
            return None
        if value is _MISMATCH or value is _OVERSIZED:
            return None
        if epoch == self._epoch:
            self.remember(skey, entry, value, req.value_type)
        return _Answer(Fetched(value, "store", skey, entry), req)

    async def _read_memory(self, req: Request) -> _Answer | None:
        """``_read`` where ``memory://`` is the store: its entry was not served by the L1 fast path."""
        skey = req.key.stored
        slot = self._l1.lookup(skey, self._clock()) if self._l1 is not None else None
        if slot is None:
            return None
        value = self._decode(req, slot[0])
        if value is _CORRUPT or value is _MISMATCH or value is _OVERSIZED:
            return None
        return _Answer(Fetched(value, "l1", skey, slot[0]), req)

    def _decode(self, req: Request, entry: Entry) -> object:
        """The stored value for this caller, else a sentinel (warned): ``_CORRUPT`` (dropped from L1,
        to be deleted), ``_OVERSIZED`` (left in place) or ``_MISMATCH``."""
        skey = req.key.stored
        if req.oversized is not None and entry.value == req.oversized:
            return _OVERSIZED
        try:
            return codec.decode(entry.value, req.value_type, max_bytes=self._max_value_bytes)
        except codec.OversizedValue as exc:
            req.oversized = entry.value
            self._stats.error(req.label)
            req.add(f"agentcache treated the entry of {skey} as a miss: {exc}")
            return _OVERSIZED
        except codec.CorruptValue as exc:
            self._stats.error(req.label)
            req.add(f"agentcache dropped an entry it could not decode ({skey}): {exc}")
            if self._l1 is not None:
                self._l1.discard(skey)
            return _CORRUPT
        except codec.WrongValueType as exc:
            req.mismatch = True
            req.add(
                f"agentcache treated the entry of {skey} as a miss: {exc}. An answer called now is "
                "not stored over it; give each value_type its own namespace"
            )
            return _MISMATCH

    # -- calling -------------------------------------------------------------------------------

    async def _call(self, req: Request) -> _Answer:
        """The calling phase (a task of its own): replay's miss, or a call, leased where possible."""
        mode = self._mode
        if mode is _REPLAY:
            raise CacheMissError(req.key.stored, req.key.material, await self._explain_miss(req))
        guard = self._guard
        if mode is _READ_WRITE and guard is not None and self._lease is not None and not req.mismatch:
            leases = guard.leases(req)
            if leases is not None:
                miss = _LeasedMiss(self, guard, req)
                return _Answer(await run_leased(leases, req.key.stored, self._lease, miss), req)
        return _Answer(await self._call_and_store(req, None), req)

    async def _recheck(self, req: Request) -> Fetched[Any] | None:
        """A lease waiter's look at the store; an entry of another value_type ends the wait."""
        found = await self._read(req)
        if found is None and req.mismatch:
            return await self._call_and_store(req, None)
        return None if found is None else found.fetched

    async def _call_and_store(self, req: Request, lease: Lease | None) -> Fetched[Any]:
        """Call upstream, then store the answer (committed, releasing ``lease``) and remember it in L1."""
        started = time.perf_counter()
        value = await invoke(req.call_fn, req.key.material)
        elapsed = time.perf_counter() - started
        self._stats.miss(req.label)  # here, not by the leader: it may have left, the call was paid
        skey = req.key.stored
        entry = self._entry(req, value, elapsed)
        if entry is not None and self._writes and not req.mismatch:
            guard = self._guard
            if guard is None or await guard.write(
                [(skey, entry)], req.label, req, release=lease
            ):  # memory:// is the store
                self._stats.stored(req.label)
            self.remember(skey, entry, value, req.value_type, decoded=False)
        return Fetched(value, "call", skey, entry)

    def _entry(self, req: Request, value: object, elapsed: float) -> Entry | None:
        """The entry to store for ``value``; ``None`` (and a warning) if it cannot be encoded."""
        try:
            data = codec.encode(value, req.value_type, max_bytes=self._max_value_bytes)
        except UnstorableValueError as exc:
            self._stats.error(req.label)
            req.add(f"agentcache could not store the answer (it was still returned): {exc}")
            return None
        meta: dict[str, Any] = {}
        if req.describe is not None:
            try:
                meta.update(req.describe(value))
            except Exception as exc:  # the answer is paid for: a failing describe() must not lose it
                req.add(f"agentcache stored the answer without metadata: describe() failed: {exc!r}")
        if req.label is not None:
            meta.setdefault("label", req.label)
        meta.update(fingerprints(req.key.base.normal))  # what lets explain() find near misses by index
        now = self._clock()
        return Entry(
            value=data,
            created_at=now,
            expires_at=None if req.ttl is None else now + req.ttl,
            call_seconds=elapsed,
            material=req.key.canonical if self._store_key_material else None,
            meta=meta,
        )

    async def _explain_miss(self, req: Request) -> str | None:
        """The readable explanation a replay miss carries; ``None`` if the store cannot tell."""
        if req.missing is not None:
            return f"nothing has been recorded here: {req.missing}"
        store: Store | None = self._guard.store if self._guard is not None else self._l1
        if store is None:
            return None
        try:
            found = await explain(store, req.key.stored, req.key.normal, now=self._clock())
        except BackendError as exc:  # the miss itself is the news; say why it is unexplained
            return f"(no explanation: the store failed while searching: {exc})"
        return found.render(with_key=False)

    # -- answering each caller -----------------------------------------------------------------

    def _for_caller(self, req: Request, fetched: Fetched[Any], shared: bool) -> Fetched[Any]:
        """This caller's ``Fetched``: counted in stats, with its own copy of a mutable answer."""
        skey = fetched.key
        entry = fetched.entry
        if not shared:
            if fetched.source != "call" and entry is not None:
                self.count_hit(skey, entry, req.label, self._clock())
            return fetched
        value = fetched.value
        if entry is None and not codec.is_immutable(value):
            # Not encodable, so no stored bytes to decode a copy from: a deep copy, so that a
            # caller mutating its answer never changes another's.
            with contextlib.suppress(Exception):  # not copyable either: shared (it could not be stored)
                value = copy.deepcopy(value)
        elif entry is not None and not codec.is_immutable(value):
            # The same value_type as the leader's (lookups of different ones are not shared), so
            # this decodes; should it not, the leader's object is shared rather than lost.
            with contextlib.suppress(codec.CorruptValue, codec.WrongValueType):
                value = codec.decode(entry.value, req.value_type, max_bytes=self._max_value_bytes)
        if fetched.source == "call":
            if entry is None:
                self._stats.coalesced(0.0, _NO_META, req.label)
            else:
                self._stats.coalesced(entry.call_seconds, entry.meta, req.label)
            return Fetched(value, "coalesced", skey, entry)
        if entry is not None:
            self.count_hit(skey, entry, req.label, self._clock())
        return Fetched(value, "store", skey, entry)


def _no_bookkeeping(_key: str, _now: float) -> None:
    """``note_hit`` of a cache whose mode never writes."""
