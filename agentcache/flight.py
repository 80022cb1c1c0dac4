"""SingleFlight: the one table of pending lookups; concurrent identical lookups share one read and one call.

A key's pending lookup is one record whose phase moves from *reading* to *calling*, and a caller
arriving in either phase joins it (DESIGN §3):

- The first caller of a key (the leader) reads in its own task: a cold hit costs no task and no
  extra loop pass. Callers arriving meanwhile wait for that read instead of each reading too.
- A read that finds the answer settles every joiner with it. A read that misses switches the
  record to calling: the call runs in a task of its own, and the leader waits for it like everyone
  else. Late arrivals join the call.
- Every caller awaits a future of its own, never the task (what ``asyncio.shield`` does, minus a
  second callback hop per caller): cancelling one caller never cancels the others or the call.
- When the last waiter of a call leaves, the call is cancelled and the key dropped (nobody reads
  its tokens). A leader cancelled while reading hands its joiners back to the table: the first of
  them to run leads a new lookup.
- The outcome (result or exception) reaches every current waiter unchanged; nothing is kept.
- The key leaves the table when the lookup ends, guarded by identity, so a late finisher never
  removes a newer lookup of the same key.
- ``run`` tells each caller whether it joined a lookup somebody else led.

Every lookup in the table belongs to one event loop (its futures do). A later loop takes the table
over once that one has stopped (a second ``asyncio.run``): the lookups it left can never land, so
they are dropped. A loop that arrives while the first still runs (another thread) is refused with
``EventLoopConflictError`` (``LoopBinding``), and the first loop's lookups are left alone.

Who touches what: ``_flights`` and each record's fields only from the event loop's thread,
between awaits, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar, cast, final

from ._loops import LoopBinding

__all__ = ["SingleFlight"]

T = TypeVar("T")
A = TypeVar("A")

_RETRY: Any = object()  # what joiners of a leader cancelled while reading get: look again


@final
class _Flight(Generic[T]):
    __slots__ = ("loop", "task", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.task: asyncio.Future[T] | None = None  # None while the leader reads
        # One future per waiting caller (a dict as an ordered set: O(1) removal when one caller is
        # cancelled among thousands); emptied when the lookup ends.
        self.waiters: dict[asyncio.Future[T], None] = {}


@final
class SingleFlight(Generic[T]):
    """One pending lookup per key; every concurrent caller of that key gets its outcome."""

    __slots__ = ("_flights", "_loop", "_loop_binding")

    def __init__(self, loop_binding: LoopBinding | None = None) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of every lookup in the table
        self._loop_binding = loop_binding if loop_binding is not None else LoopBinding("a SingleFlight")

    def __len__(self) -> int:
        """How many keys have a lookup pending."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    async def do(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``start()`` once for all concurrent callers of ``key``; return (result, shared)."""
        return await self.run(key, None, _call_without_arg, start)

    async def run(
        self,
        key: Hashable,
        read: Callable[[A], Awaitable[T | None]] | None,
        call: Callable[[A], Awaitable[T]],
        arg: A,
    ) -> tuple[T, bool]:
        """``read(arg)`` here, and on ``None`` ``call(arg)`` in a task, once for all callers of ``key``.

        Returns (result, shared): ``shared`` is True for a caller that joined another's lookup.
        (``arg`` rather than closures: a caller that joins builds nothing.)
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._follow(loop)
        while True:
            flight = self._flights.get(key)
            if flight is None:
                break
            waiter = self._join(flight)
            try:
                result = await waiter
            finally:
                self._leave(key, flight, waiter)
            if result is not _RETRY:
                return result, True
        flight = _Flight(loop)
        self._flights[key] = flight
        if read is not None:
            try:
                found = await read(arg)
            except BaseException as exc:
                self._drop(key, flight)
                if isinstance(exc, asyncio.CancelledError):
                    self._settle(flight, _RETRY)
                else:
                    self._settle(flight, None, exc)
                raise
            if found is not None:
                self._drop(key, flight)
                self._settle(flight, found)
                return found, False
        task = asyncio.ensure_future(call(arg))
        flight.task = task
        task.add_done_callback(functools.partial(self._land, key, flight))
        waiter = self._join(flight)
        try:
            return await waiter, False
        finally:
            self._leave(key, flight, waiter)

    def cancel_all(self) -> list[asyncio.Future[T]]:
        """Cancel every call in flight (used when the cache closes); return the cancelled calls.

        Awaiting them lets their cleanup (a lease handed back) finish before the store closes.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._follow(loop)  # what a stopped loop left is dropped, not cancelled on that loop
        cancelled: list[asyncio.Future[T]] = []
        for key, flight in list(self._flights.items()):
            if flight.task is not None and not flight.task.done():
                flight.task.cancel()
                cancelled.append(flight.task)
            self._drop(key, flight)
        return cancelled

    def _follow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take the table over for ``loop``; ``EventLoopConflictError`` while the previous one runs."""
        self._loop_binding.bind(loop)
        # Left by a loop that has stopped with them pending: they will never land.
        self._flights = {}
        self._loop = loop

    @staticmethod
    def _join(flight: _Flight[T]) -> asyncio.Future[T]:
        """A future of this caller's own, settled with the lookup's outcome."""
        waiter: asyncio.Future[T] = flight.loop.create_future()
        flight.waiters[waiter] = None
        return waiter

    def _leave(self, key: Hashable, flight: _Flight[T], waiter: asyncio.Future[T]) -> None:
        """After ``waiter`` was awaited, however that ended."""
        if waiter in flight.waiters:  # still registered: this caller left before the end
            del flight.waiters[waiter]
            task = flight.task
            if not flight.waiters and task is not None and not task.done():
                # The last reader left: stop paying for an answer nobody will read, and let a
                # caller that arrives now start afresh rather than join a dying call.
                task.cancel()
                self._drop(key, flight)

    def _land(self, key: Hashable, flight: _Flight[T], task: asyncio.Future[T]) -> None:
        self._drop(key, flight)
        if task.cancelled():
            waiters, flight.waiters = flight.waiters, {}
            for waiter in waiters:
                waiter.cancel()
            return
        # Retrieving the exception also marks it seen: the waiters get it, or nobody was left to.
        exc = task.exception()
        self._settle(flight, None if exc is not None else task.result(), exc)

    @staticmethod
    def _settle(flight: _Flight[T], result: T | None, exc: BaseException | None = None) -> None:
        waiters, flight.waiters = flight.waiters, {}
        for waiter in waiters:
            if waiter.done():  # its caller was cancelled in this very loop turn
                continue
            if exc is None:
                waiter.set_result(cast(T, result))
            else:
                waiter.set_exception(exc)

    def _drop(self, key: Hashable, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]


async def _call_without_arg(start: Callable[[], Awaitable[T]]) -> T:
    return await start()
