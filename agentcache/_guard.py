"""StoreGuard: fail-open access to the persistent store, with its outage state and policy in one object.

Everything the cache does to its persistent store goes through here: opening (once, however many
callers arrive at a fresh cache), reading, writing, deleting, closing. Failures are the guard's to
handle:

- **strict** (``on_store_error="raise"``, and always in ``replay`` mode): every failure raises.
- otherwise **fail open**: the failure is counted in ``stats.errors``, warned once per outage (to
  the caller's line, via ``Notices``), and the store is *rested*: for ``retry`` seconds calls go
  straight through without touching it, so one outage stalls at most the one call that met it (a
  locked file would otherwise cost every call its busy timeout). A failed write rests writes only:
  reads are still served where they can be (a full disk, another process holding the write lock).
  A failed read or open rests both, and so does a failed write that could not reach the store at
  all (``capabilities.Reachability``: a Redis server that does not answer would keep reads waiting
  just as long). After the rest one call probes the store with its own work; the probe runs in a
  task of its own and that call waits for it at most ``PROBE_WAIT``, so a store that is still down
  stalls nobody again, and a probe decides the outage even after its caller went on (the others
  keep going straight through until it ends). Each failed probe doubles the rest, up to
  ``MAX_REST`` seconds; a successful one ends the rest. The outage (one warning, the grown rest)
  ends with the first success of ordinary work after it, so a store that flaps stays one outage.
  A lookup that met a failure (or a probe that did not answer in time) does not try the store
  again, neither to read nor to claim a lease nor to write: one outage stalls it at most once.

Replay mode never writes, so it opens a store without creating anything where the store can
(``capabilities.OpensExisting``): a store that is not there is a ``StoreMissingError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar, final

from ._notices import Notices
from .errors import BackendError
from .stats import StatsRecorder
from .stores import Entry, Store, redact_url
from .stores.capabilities import Lease, LeaseStore, leases_of, opens_existing, reachability_of

__all__ = ["MAX_REST", "PROBE_WAIT", "StoreGuard"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_REST = 30.0
"""The longest rest after repeated failures (seconds), unless ``retry`` itself is longer."""

PROBE_WAIT = 0.05
"""How long (seconds) the call that probes a resting store waits for the probe before it goes
straight through: a store that is back answers well within it (that call is served), one that is
still down costs it this, not a timeout."""

_PROBING = float("inf")  # a rest that ends when the probe in progress does


@final
class StoreGuard:
    """Opens, reads, writes and deletes through a store, failing open (or raising when strict)."""

    __slots__ = (
        "_leases",
        "_monotonic",
        "_open",
        "_opening",
        "_probe",
        "_probe_wait",
        "_read_rest_until",
        "_reads_only",
        "_rest",
        "_retry",
        "_stats",
        "_unreachable",
        "_warned",
        "_write_rest_until",
        "_writes",
        "store",
        "strict",
    )

    def __init__(
        self,
        store: Store,
        *,
        strict: bool,
        reads_only: bool,
        writes: bool,
        retry: float,
        stats: StatsRecorder,
        monotonic: Callable[[], float] = time.monotonic,
        probe_wait: float | None = None,
    ) -> None:
        self.store = store
        self._monotonic = monotonic
        self.strict = strict
        self._reads_only = reads_only  # replay: open without creating anything
        self._writes = writes  # misses are stored: only a write ends an outage
        self._retry = retry
        self._stats = stats
        self._leases = leases_of(store)
        reachability = reachability_of(store)
        self._unreachable = None if reachability is None else reachability.unreachable
        # Read here, not bound as a default argument: a test can lengthen it for the guards it builds.
        self._probe_wait = PROBE_WAIT if probe_wait is None else probe_wait
        self._open = False
        self._opening: asyncio.Task[None] | None = None
        self._probe: asyncio.Future[Any] | None = None  # the probe in progress (the running loop's)
        # Outage state: monotonic times before which reads / writes skip the store (0: healthy).
        self._read_rest_until = 0.0
        self._write_rest_until = 0.0
        self._rest = retry  # the next rest; doubles per failed probe
        self._warned = False  # this outage has been warned about

    @property
    def is_open(self) -> bool:
        """Whether the store has been opened (and not closed since)."""
        return self._open

    @property
    def healthy(self) -> bool:
        """No outage: neither reads nor writes are being skipped."""
        return not self._read_rest_until and not self._write_rest_until

    # -- opening -------------------------------------------------------------------------------

    async def _ensure_open(self) -> None:
        """Open the store once for all concurrent callers; raises ``BackendError``."""
        opening = self._opening
        if opening is None or opening.get_loop() is not asyncio.get_running_loop():
            opening = self._opening = asyncio.ensure_future(self._open_store())
        try:
            # Shielded: one caller cancelled while the store opens must not cancel it for the rest.
            await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening and not self._open:
                self._opening = None  # failed (or cancelled): the next attempt opens afresh

    async def _open_store(self) -> None:
        existing = opens_existing(self.store) if self._reads_only else None
        if existing is not None:
            await existing.open_existing()
        else:
            await self.store.open()
        self._open = True

    async def open_or_raise(self) -> Store:
        """The opened store, or the ``BackendError`` that kept it closed (the direct API raises)."""
        if not self._open:
            await self._ensure_open()
        return self.store

    async def aclose(self) -> None:
        """Let a probe under way end, close the store (flushing its bookkeeping); failures are only logged."""
        loop = asyncio.get_running_loop()
        for pending in (self._opening, self._probe):
            if pending is not None and not pending.done() and pending.get_loop() is loop:
                await asyncio.gather(pending, return_exceptions=True)  # bounded by the store's timeouts
        self._opening = self._probe = None
        self._open = False
        try:
            if self._leases is not None:
                await self._leases.settle()  # a claim given back must reach the store first
            # Even if this guard never opened it: the store may have been opened through
            # ``cache.store`` (a scan, an explain), and its connections must not outlive the loop.
            await self.store.aclose()
        except BackendError as exc:
            log.debug("closing %s failed: %s", redact_url(self.store.url), exc)

    # -- guarded access ------------------------------------------------------------------------

    async def read(
        self, keys: Sequence[str], now: float, label: str | None, notices: Notices
    ) -> list[Entry | None] | None:
        """The entries of ``keys``; ``None`` when the store is resting or failed (fail-open)."""
        if notices.store_failed:
            return None
        if self._read_rest_until != 0.0:
            if not self._may_probe(writing=False):
                return None
            return await self._probed(
                self._read(keys, now, label, notices, probe=True), notices, None, writing=False
            )
        return await self._read(keys, now, label, notices, probe=False)

    async def _read(
        self, keys: Sequence[str], now: float, label: str | None, notices: Notices, *, probe: bool
    ) -> list[Entry | None] | None:
        try:
            if not self._open:
                await self._ensure_open()
            found = await self.store.get_many(keys, now)
        except BackendError as exc:
            self.failed(exc, label, notices, writing=False)
            return None
        except BaseException:
            if probe:
                self._probe_abandoned(writing=False)
            raise
        self._succeeded(writing=False, probe=probe)
        return found

    async def write(
        self,
        items: Sequence[tuple[str, Entry]],
        label: str | None,
        notices: Notices,
        release: Lease | None = None,
    ) -> bool:
        """Store ``items`` (releasing ``release`` with them); False if they were not stored."""
        if notices.store_failed:
            return False
        if self._write_rest_until != 0.0:
            if not self._may_probe(writing=True):
                return False
            return await self._probed(
                self._write(items, label, notices, release, probe=True), notices, False, writing=True
            )
        return await self._write(items, label, notices, release, probe=False)

    async def _write(
        self,
        items: Sequence[tuple[str, Entry]],
        label: str | None,
        notices: Notices,
        release: Lease | None,
        *,
        probe: bool,
    ) -> bool:
        try:
            if not self._open:
                await self._ensure_open()
            await self.store.set_many(items, release=release)
        except BackendError as exc:
            self.failed(exc, label, notices, writing=True)
            return False
        except BaseException:
            if probe:
                self._probe_abandoned(writing=True)
            raise
        self._succeeded(writing=True, probe=probe)
        return True

    async def delete(self, keys: Sequence[str], label: str | None, notices: Notices) -> None:
        """Delete entries that cannot be read (fail-open: a failure is counted, warned, rested)."""
        if notices.store_failed:
            return
        if self._write_rest_until != 0.0:
            if self._may_probe(writing=True):
                await self._probed(
                    self._delete(keys, label, notices, probe=True), notices, None, writing=True
                )
            return
        await self._delete(keys, label, notices, probe=False)

    async def _delete(self, keys: Sequence[str], label: str | None, notices: Notices, *, probe: bool) -> None:
        try:
            if not self._open:
                await self._ensure_open()
            await self.store.delete_many(keys)
        except BackendError as exc:
            self.failed(exc, label, notices, writing=True)
            return
        except BaseException:
            if probe:
                self._probe_abandoned(writing=True)
            raise
        self._succeeded(writing=True, probe=probe)

    def leases(self, notices: Notices) -> LeaseStore | None:
        """The store's leases, unless writes rest or this lookup met a failure (it calls straight through).

        Asked before every claim (``leasing.LeasedCall.leases``): a waiter whose look at the store
        failed does not claim again.
        """
        if self._leases is None or self._write_rest_until or not self._open or notices.store_failed:
            return None
        return self._leases

    async def _probed(
        self, attempt: Coroutine[Any, Any, T], notices: Notices, gave_up: T, *, writing: bool
    ) -> T:
        """Run ``attempt`` (a probe) in a task of its own; its result if it ends within ``probe_wait``.

        Otherwise ``gave_up``: the caller goes straight through, and the probe goes on to decide
        the outage (``_succeeded`` or ``failed``), even if its caller is cancelled meanwhile.
        """
        probe: asyncio.Task[T] = asyncio.ensure_future(attempt)
        self._probe = probe

        def ended(probe: asyncio.Future[T]) -> None:
            if probe.cancelled() and self._probe is probe:
                self._probe_abandoned(writing=writing)  # perhaps before it began: it decided nothing
            elif not probe.cancelled() and probe.exception() is not None:
                log.debug("a store probe raised: %r", probe.exception())

        probe.add_done_callback(ended)
        done, _ = await asyncio.wait((probe,), timeout=self._probe_wait)
        if done and not probe.cancelled():
            return probe.result()
        notices.store_failed = True  # the store did not answer in time: this lookup leaves it alone
        return gave_up

    # -- the outage policy ---------------------------------------------------------------------

    def failed(self, exc: BackendError, label: str | None, notices: Notices, *, writing: bool) -> None:
        """Count a store failure; raise it if strict, else rest the store and warn once per outage."""
        self._stats.error(label)
        notices.store_failed = True
        if self.strict:
            raise exc
        if writing and self._unreachable is not None and self._unreachable(exc):
            writing = False  # nothing reached the server: a read would wait out the same timeout
        now = self._monotonic()
        resting = now < self._write_rest_until if writing else now < self._read_rest_until
        if not resting or self._write_rest_until == _PROBING or self._read_rest_until == _PROBING:
            # The first failure of an outage, or a failed probe: rest, and rest longer next time.
            # Calls that were already under way when the outage began (a failing batch of ten
            # concurrent writes) only count: they neither lengthen this rest nor the next.
            until = now + self._rest
            self._write_rest_until = until
            if not writing:
                self._read_rest_until = until
            self._rest = min(max(self._rest * 2, self._retry), max(MAX_REST, self._retry))
        elif not writing and not self._read_rest_until:
            self._read_rest_until = self._write_rest_until
        if not self._warned:
            self._warned = True
            # A write outage leaves reads alone: say so, or users think nothing is served.
            outage = (
                "without storing until it recovers (stored answers are still served)"
                if writing
                else "without the cache until it recovers"
            )
            notices.add(
                f"agentcache store {redact_url(self.store.url)} failed; calling through {outage}: {exc}"
            )
        log.debug("store failure (resting %.3g s): %s", self._rest, exc)

    def _may_probe(self, *, writing: bool) -> bool:
        """True (and this caller is the probe) once the rest is over; strict callers always try."""
        if self.strict:
            return True
        until = self._write_rest_until if writing else self._read_rest_until
        if self._monotonic() < until:
            return False
        # This caller probes; everyone else keeps calling straight through until it is done.
        if writing:
            self._write_rest_until = _PROBING
        else:
            self._read_rest_until = _PROBING
            if self._write_rest_until:
                self._write_rest_until = _PROBING
        return True

    def _succeeded(self, *, writing: bool, probe: bool) -> None:
        if writing:
            if self._write_rest_until:
                self._write_rest_until = 0.0
        elif self._read_rest_until:
            self._read_rest_until = 0.0
            if self._write_rest_until == _PROBING:
                self._write_rest_until = 0.0  # rested by the read failure: reachable again
        ordinary = not probe and (writing or not self._writes)
        if ordinary and not self._read_rest_until and not self._write_rest_until:
            # Ordinary work succeeded, not just a probe (and where misses are written, a write: a
            # full disk still serves reads): a store that flaps (a disk with room for one more
            # entry at a time) stays one outage, warned once, its rests still growing.
            self._rest = self._retry
            self._warned = False

    def _probe_abandoned(self, *, writing: bool) -> None:
        # A probe cancelled midway decided nothing: let the next caller probe instead (a read
        # probe also held the writes, which its read failure had rested too).
        now = self._monotonic()
        if self._write_rest_until == _PROBING:
            self._write_rest_until = now
        if not writing and self._read_rest_until == _PROBING:
            self._read_rest_until = now
