"""Cross-process single-flight: the LeaseStore protocol and the hold-or-wait loop the cache runs on a miss.

In one process ``SingleFlight`` already merges identical calls. Across processes (``pytest -n 8``,
a pool of workers, several machines on one Redis) a store that offers leases lets them agree too:

1. the flight's leader reads the store and misses;
2. it tries to ``claim`` the key's lease. The winner re-reads the store (the value may have landed
   between its read and its claim), calls, stores the value, then ``release``\\s the lease, which
   also wakes waiters. While it calls, the lease is ``renew``\\ed every ttl/3 (one timer renews
   all the leases an event loop holds);
3. everybody else waits (``wait_released``: a notification where the store has one, else a short
   sleep that doubles up to ``poll_max``), re-reads the store, and tries to claim again;
4. a holder that dies (kill -9) stops renewing, so its lease expires after ``ttl`` and exactly one
   waiter's claim succeeds; a holder whose call raises releases at once, and again exactly one
   waiter wins the next claim: the others keep waiting instead of all calling;
5. nobody waits longer than ``max_wait``: past it the waiter calls through and warns.

While the holder calls, ``held_lease`` tells the store which lease the running flight holds, so that
a store can release it in the very transaction that stores the key's value (SQLite: one group
commit, not two; Redis: one round trip) and mark it ``released``; the holder then skips its own
``release``. Only the flight's own write does this (a context variable, not a key lookup).

A store failure while claiming or waiting degrades to calling through: the lease only saves calls,
and the same outage is reported (warned once, counted, or raised under ``on_store_error="raise"``)
by the cache's own read and write of the entry, so it is not counted twice here.
Lease expiry is measured in wall-clock time (``time.time``) of the processes involved, or by the
server (Redis), never by the cache's injectable clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from ..errors import AgentCacheWarning, BackendError, ConfigurationError

__all__ = [
    "HeldLease",
    "LeasePolicy",
    "LeaseStore",
    "held_lease",
    "lease_store_of",
    "new_token",
    "run_leased",
]

log = logging.getLogger(__name__)

R = TypeVar("R")


class HeldLease:
    """The lease a flight holds while it calls; ``released`` once a store let it go with the value."""

    __slots__ = ("key", "leases", "released", "token")

    def __init__(self, leases: object, key: str, token: str) -> None:
        self.leases, self.key, self.token = leases, key, token
        self.released = False


# A context variable, so that only the holder's own write of the key's value carries the release,
# not another task's write of the same key.
_HELD: ContextVar[HeldLease | None] = ContextVar("agentcache_held_lease", default=None)


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
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"LeasePolicy.{name} must be a positive number, not {value!r}")
        if self.poll_min > self.poll_max:
            raise ConfigurationError("LeasePolicy.poll_min must not exceed poll_max")


@runtime_checkable
class LeaseStore(Protocol):
    """A store's leases on keys. All methods may raise ``BackendError``."""

    async def claim(self, key: str, ttl: float) -> str | None:
        """Take the lease on ``key`` for ``ttl`` seconds: a token if won, ``None`` if held elsewhere."""

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend a lease we hold; ``False`` if it was lost (expired, and perhaps claimed again)."""

    async def release(self, key: str, token: str) -> None:
        """Give the lease back (a no-op if it is no longer ours) and wake the key's waiters."""

    async def wait_released(self, key: str, timeout: float) -> None:
        """Return when ``key``'s lease may have been released, or after ``timeout`` at the latest."""


def lease_store_of(store: object) -> LeaseStore | None:
    """The store's leases (its ``leases()``), or ``None`` for stores without them (memory://)."""
    leases = getattr(store, "leases", None)
    return leases() if callable(leases) else None


def new_token() -> str:
    """A claim's token: 64 random bits, unique enough to tell one holder from the next.

    Not a secret (it sits in the store for anyone who can read it), so the ``random`` module
    serves: a ``secrets`` token costs a system call per miss. ``random`` is reseeded in a child
    after ``fork``, so forked workers do not draw the same tokens.
    """
    return f"{random.getrandbits(64):016x}"


def held_lease(leases: object) -> HeldLease | None:
    """The lease on ``leases`` that the running flight holds and has not released, else ``None``.

    A store asks this when it writes values: if it writes ``key``, it may release the lease in
    the same transaction, then must set ``released`` and wake this process's waiters itself.
    """
    held = _HELD.get()
    if held is not None and held.leases is leases and not held.released:
        return held
    return None


async def run_leased(
    leases: LeaseStore,
    key: str,
    policy: LeasePolicy,
    *,
    call: Callable[[], Awaitable[R]],
    recheck: Callable[[], Awaitable[R | None]],
) -> R:
    """``call()`` if we win ``key``'s lease, else wait for whoever holds it and ``recheck()``.

    ``call`` calls upstream and stores the value; ``recheck`` reads the store (``None``: not there).
    """
    started = time.monotonic()
    delay = policy.poll_min
    while True:
        try:
            token = await leases.claim(key, policy.ttl)
        except BackendError as exc:
            log.debug("claiming the lease on %s failed; calling through: %s", key, exc)
            return await call()
        if token is not None:
            return await _hold(leases, key, token, policy, call, recheck)
        remaining = policy.max_wait - (time.monotonic() - started)
        if remaining <= 0:
            warnings.warn(
                f"agentcache waited {policy.max_wait:g}s for another process's call of {key}; "
                "calling through (raise LeasePolicy.max_wait if such calls take longer)",
                AgentCacheWarning,
                stacklevel=2,
            )
            return await call()
        try:
            await leases.wait_released(key, min(delay, remaining))
        except BackendError as exc:
            log.debug("waiting for the lease on %s failed; calling through: %s", key, exc)
            return await call()
        delay = min(delay * 2, policy.poll_max)
        found = await recheck()
        if found is not None:
            return found


async def _hold(
    leases: LeaseStore,
    key: str,
    token: str,
    policy: LeasePolicy,
    call: Callable[[], Awaitable[R]],
    recheck: Callable[[], Awaitable[R | None]],
) -> R:
    """Call while holding the lease, renewing it; always release it (value stored, failed, cancelled)."""
    held = HeldLease(leases, key, token)
    renewals = _Renewals.of(policy.ttl)
    renewals.add(held, leases)
    holding = _HELD.set(held)
    try:
        # The previous holder may have stored the value and released between our read and claim.
        found = await recheck()
        if found is not None:
            return found
        return await call()
    finally:
        _HELD.reset(holding)
        renewals.discard(held)
        if not held.released:  # else the store released it with the value (held_lease)
            try:
                # Shielded: a cancelled caller must still hand the lease on, or waiters sit out the ttl.
                await asyncio.shield(leases.release(key, token))
            except BackendError as exc:
                log.debug("releasing the lease on %s failed (it will expire): %s", key, exc)


class _Renewals:
    """Renews every lease this event loop holds with one ttl, together, every ttl/3 until none is held.

    One timer for all of them: a miss only adds its lease to a dict and removes it again, instead
    of scheduling and cancelling a timer of its own (most calls end long before ttl/3). A lease
    added just after a round is renewed at the next, at most ttl/3 later, well inside its ttl.
    """

    __slots__ = ("_handle", "_held", "_task", "_ttl")

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._held: dict[HeldLease, LeaseStore] = {}
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

    def add(self, held: HeldLease, leases: LeaseStore) -> None:
        self._held[held] = leases
        if self._handle is None and self._task is None:
            self._handle = asyncio.get_running_loop().call_later(self._ttl / 3, self._due)

    def discard(self, held: HeldLease) -> None:
        """Stop renewing ``held``; the last one out stops the timer (and a round in flight)."""
        self._held.pop(held, None)
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

    async def _round(self, held: list[tuple[HeldLease, LeaseStore]]) -> None:
        try:
            await asyncio.gather(*(self._renew(lease, leases) for lease, leases in held))
        finally:
            if self._task is asyncio.current_task():
                self._task = None
            if self._held and self._handle is None and self._task is None:
                self._handle = asyncio.get_running_loop().call_later(self._ttl / 3, self._due)

    async def _renew(self, held: HeldLease, leases: LeaseStore) -> None:
        try:
            if not await leases.renew(held.key, held.token, self._ttl) and held in self._held:
                if not held.released:
                    log.warning("lost the lease on %s (paused past its ttl?); another may call too", held.key)
                self._held.pop(held, None)
        except BackendError as exc:
            log.debug("renewing the lease on %s failed: %s", held.key, exc)


_RENEWALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Renewals]] = (
    weakref.WeakKeyDictionary()
)
