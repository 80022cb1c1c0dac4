"""Cross-process single-flight: the hold-or-wait loop a miss runs on a store that offers leases.

In one process the flight (``flight.py``) already merges identical calls. Across processes
(``pytest -n 8``, a pool of workers, several machines on one Redis) a store with leases
(``stores/capabilities.py``) lets them agree too:

1. the flight's leader read the store and missed;
2. it claims the key's lease. The winner re-reads the store (the value may have landed between its
   read and its claim), calls, and stores the value with ``set_many(items, release=lease)``: the
   store releases the lease in the commit of the value, which also wakes waiters. While it calls,
   the lease is renewed every ttl/3 (one timer renews all the leases an event loop holds);
3. everybody else waits (``wait_released``: a notification where the store has one, else a short
   sleep that doubles up to ``poll_max``), re-reads the store, and claims again;
4. a holder that dies (kill -9) stops renewing, so its lease expires after ``ttl`` and exactly one
   waiter's claim succeeds; a holder whose call raises, or whose value is not stored, releases at
   once, and again exactly one waiter wins the next claim;
5. nobody waits longer than ``max_wait``: past it the waiter calls through and warns.

Cancellation at any await of this path never leaves a lease behind: a caller cancelled while its
claim is in flight never holds it (the store gives a claim that won after its caller left back, see
``LeaseStore.claim``), and a holder's ``finally`` releases under ``asyncio.shield``.

A store failure while claiming or waiting degrades to calling through: the lease only saves calls.
The failure is handed to ``miss.failed`` (the cache's fail-open guard), which counts it, warns once
per outage, or raises under strictness. Before each claim after the first, ``miss.leases()`` asks
the guard again: a waiter whose look at the store failed (or whose store now rests) calls through
rather than claim from a store that does not answer, and a holder whose miss met a failure hands
its lease back without waiting for the store (the release is queued; closing the store lets it
land). So a stopped server stalls a leased miss at most once. Lease expiry is wall-clock time
(``time.time``) of the processes involved, or the server's (Redis), never the cache's injectable
clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
import weakref
from dataclasses import dataclass
from typing import Protocol, TypeVar, final

from ._options import MAX_TTL
from .errors import BackendError, ConfigurationError
from .stores.capabilities import Lease, LeaseStore

__all__ = ["LeasePolicy", "LeasedCall", "new_token", "run_leased"]

log = logging.getLogger(__name__)

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@final
@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How long a lease lives unrenewed, and how waiting behaves (seconds)."""

    ttl: float = 15.0
    """A dead holder's lease expires this long after its last renewal (renewed every ttl/3)."""
    max_wait: float = 120.0
    """A waiter calls through itself (and warns) after waiting this long for another's call."""
    poll_min: float = 0.005
    """The first re-check of a waiter; doubled on every round up to ``poll_max``."""
    poll_max: float = 0.1
    """The longest pause between re-checks (notifications usually wake waiters sooner)."""

    def __post_init__(self) -> None:
        for name in ("ttl", "max_wait", "poll_min", "poll_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigurationError(
                    f"LeasePolicy.{name} must be a positive, finite number, not {value!r}"
                )
        if self.ttl > MAX_TTL:  # a store could not keep it (a Redis expiry that far is refused)
            raise ConfigurationError(
                f"LeasePolicy.ttl must be at most {MAX_TTL:.0f} seconds, not {self.ttl!r}"
            )
        if self.poll_min > self.poll_max:
            raise ConfigurationError("LeasePolicy.poll_min must not exceed poll_max")


def new_token() -> str:
    """A claim's token: 64 random bits, unique enough to tell one holder from the next.

    Not a secret (it sits in the store for anyone who can read it), so the ``random`` module
    serves: a ``secrets`` token costs a system call per miss. ``random`` is reseeded in a child
    after ``fork``, so forked workers do not draw the same tokens.
    """
    return f"{random.getrandbits(64):016x}"


class LeasedCall(Protocol[R_co]):
    """What a miss gives ``run_leased``: one object per miss rather than five callbacks."""

    def leases(self) -> LeaseStore | None:
        """The leases to claim from now, or ``None``: this miss met a store failure, or the store rests."""

    async def call(self, lease: Lease) -> R_co:
        """Call upstream and store the value with ``set_many(..., release=lease)``."""

    async def recheck(self) -> R_co | None:
        """Read the store again (``None``: the value is not there)."""

    def failed(self, exc: BackendError) -> None:
        """A store failure while claiming or waiting (``run_leased`` then calls through)."""

    def gave_up(self, waited: float) -> None:
        """The wait passed ``max_wait`` (``run_leased`` then calls through)."""


async def run_leased(leases: LeaseStore, key: str, policy: LeasePolicy, miss: LeasedCall[R]) -> R:
    """``miss.call(lease)`` if we win the lease on ``key``, else wait for its holder, ``miss.recheck()``.

    ``leases``: what ``miss.leases()`` gave for the first claim.
    """
    call, recheck = miss.call, miss.recheck
    started = time.monotonic()
    delay = policy.poll_min
    while True:
        lease = Lease(key, new_token())
        try:
            won = await leases.claim(lease.key, lease.token, policy.ttl)
        except BackendError as exc:
            miss.failed(exc)
            return await call(_UNHELD)
        if won:
            return await _hold(leases, lease, policy, miss)
        remaining = policy.max_wait - (time.monotonic() - started)
        if remaining <= 0:
            miss.gave_up(policy.max_wait)
            return await call(_UNHELD)
        try:
            await leases.wait_released(key, min(delay, remaining))
        except BackendError as exc:
            miss.failed(exc)
            return await call(_UNHELD)
        delay = min(delay * 2, policy.poll_max)
        found = await recheck()
        if found is not None:
            return found
        again = miss.leases()
        if again is None:  # the look failed, or the store rests: a claim would wait on it as well
            return await call(_UNHELD)
        leases = again


_UNHELD = Lease("", "")
_UNHELD.released = True  # the lease of a call made without one: nothing for a store to release


async def _hold(leases: LeaseStore, lease: Lease, policy: LeasePolicy, miss: LeasedCall[R]) -> R:
    """Call while holding the lease, renewing it; always release it (value stored, failed, cancelled)."""
    renewals = _Renewals.of(policy.ttl)
    renewals.add(lease, leases)
    try:
        # The previous holder may have stored the value and released between our read and claim.
        found = await miss.recheck()
        if found is not None:
            return found
        return await miss.call(lease)
    finally:
        renewals.discard(lease)
        if not lease.released:  # else the store released it with the value
            lease.released = True
            # A task of its own: a cancelled caller must still hand the lease on, or waiters sit
            # out the ttl. Its first step queues the release with the store, before this caller
            # (or a close of the cache) runs again, so closing the store lets it land.
            release = asyncio.ensure_future(leases.release(lease.key, lease.token))
            release.add_done_callback(functools.partial(_log_release_failure, lease.key))
            if miss.leases() is None:
                # This miss met a store failure (or the store rests): waiting for the release
                # would stall the call on the store a second time.
                _DETACHED.add(release)
                release.add_done_callback(_DETACHED.discard)
            else:
                with contextlib.suppress(BackendError):  # logged by _log_release_failure
                    await asyncio.shield(release)


_DETACHED: set[asyncio.Future[None]] = set()  # releases nobody waits for, kept alive until they land


def _log_release_failure(key: str, release: asyncio.Future[None]) -> None:
    if not release.cancelled() and (exc := release.exception()) is not None:
        log.debug("releasing the lease on %s failed (it will expire): %r", key, exc)


@final
class _Renewals:
    """Renews every lease this event loop holds with one ttl, together, every ttl/3 until none is held.

    One timer for all of them: a miss only adds its lease to a dict and removes it again, instead
    of scheduling and cancelling a timer of its own (most calls end long before ttl/3). A lease
    added just after a round is renewed at the next, at most ttl/3 later, well inside its ttl.
    """

    __slots__ = ("_handle", "_held", "_task", "_ttl")

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._held: dict[Lease, LeaseStore] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def of(ttl: float) -> _Renewals:
        """The renewals of the running event loop for leases of ``ttl`` seconds."""
        by_ttl = _RENEWALS.get(loop := asyncio.get_running_loop())
        if by_ttl is None:
            by_ttl = _RENEWALS[loop] = {}
        renewals = by_ttl.get(ttl)
        if renewals is None:
            renewals = by_ttl[ttl] = _Renewals(ttl)
        return renewals

    def add(self, lease: Lease, leases: LeaseStore) -> None:
        self._held[lease] = leases
        if self._handle is None and self._task is None:
            self._handle = asyncio.get_running_loop().call_later(self._ttl / 3, self._due)

    def discard(self, lease: Lease) -> None:
        """Stop renewing ``lease``; the last one out stops the timer (and a round in flight)."""
        self._held.pop(lease, None)
        if not self._held:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            if self._task is not None:
                self._task.cancel()
                self._task = None

    def _due(self) -> None:
        self._handle = None
        if self._held:
            self._task = asyncio.ensure_future(self._round(list(self._held.items())))

    async def _round(self, held: list[tuple[Lease, LeaseStore]]) -> None:
        try:
            await asyncio.gather(*(self._renew(lease, leases) for lease, leases in held))
        finally:
            if self._task is asyncio.current_task():
                self._task = None
            if self._held and self._handle is None and self._task is None:
                self._handle = asyncio.get_running_loop().call_later(self._ttl / 3, self._due)

    async def _renew(self, lease: Lease, leases: LeaseStore) -> None:
        try:
            if not await leases.renew(lease.key, lease.token, self._ttl) and lease in self._held:
                if not lease.released:
                    log.warning(
                        "lost the lease on %s (paused past its ttl?); another may call too", lease.key
                    )
                self._held.pop(lease, None)
        except BackendError as exc:
            log.debug("renewing the lease on %s failed: %s", lease.key, exc)


_RENEWALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Renewals]] = (
    weakref.WeakKeyDictionary()
)
