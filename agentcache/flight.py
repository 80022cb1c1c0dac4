"""SingleFlight: merge concurrent identical calls into one task; it keeps no results.

The rules (DESIGN §3), and who may touch what: ``_flights`` and each ``_Flight.waiters`` are read and
written only from the event loop's thread, between awaits, so no lock is needed.

- The first caller of a key starts the call in its own task; later callers await that task.
- Every caller awaits a future of its own, never the task (what ``asyncio.shield`` does, minus a
  second callback hop per caller): cancelling one caller never cancels the others or the call.
- When the last waiter leaves, the call is cancelled and the key dropped (nobody reads its tokens).
- The call's exception reaches every current waiter unchanged; nothing is kept afterwards.
- The key leaves the table when the call ends, guarded by identity, so a late finisher never
  removes a newer flight of the same key.
- ``do`` tells each caller whether it shared a flight somebody else started.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        # One future per caller still waiting (a dict as an ordered set: O(1) removal when one
        # caller is cancelled among thousands); emptied when the task lands.
        self.waiters: dict[asyncio.Future[T], None] = {}


class SingleFlight(Generic[T]):
    """One in-flight call per key; every concurrent caller of that key gets its outcome."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}

    def __len__(self) -> int:
        """How many keys have a call in flight."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    async def do(self, key: str, start: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``start()`` once for all concurrent callers of ``key``; return (result, shared)."""
        flight = self._flights.get(key)
        if flight is not None and flight.task.get_loop() is not asyncio.get_running_loop():
            # Left by an event loop that was closed with it pending: it will never land.
            self._drop(key, flight)
            flight = None
        shared = flight is not None
        if flight is None:
            task: asyncio.Task[T] = asyncio.ensure_future(start())
            flight = _Flight(task)
            self._flights[key] = flight
            task.add_done_callback(functools.partial(self._land, key, flight))
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        flight.waiters[waiter] = None
        try:
            result = await waiter
        finally:
            if waiter in flight.waiters:  # still registered: this caller left before the call ended
                del flight.waiters[waiter]
                if not flight.waiters and not flight.task.done():
                    # The last reader left: stop paying for an answer nobody will read, and let a
                    # caller that arrives now start afresh rather than join a dying flight.
                    flight.task.cancel()
                    self._drop(key, flight)
        return result, shared

    def cancel_all(self) -> int:
        """Cancel every call in flight (used when the cache closes); return how many."""
        flights = list(self._flights.items())
        for key, flight in flights:
            flight.task.cancel()
            self._drop(key, flight)
        return len(flights)

    def _land(self, key: str, flight: _Flight[T], _task: object = None) -> None:
        self._drop(key, flight)
        waiters, flight.waiters = flight.waiters, {}
        task = flight.task
        if task.cancelled():
            for waiter in waiters:
                waiter.cancel()
            return
        # Retrieving the exception also marks it seen: the waiters get it, or nobody was left to.
        exc = task.exception()
        result = task.result() if exc is None else None
        for waiter in waiters:
            if waiter.done():  # its caller was cancelled in this very loop turn
                continue
            if exc is None:
                waiter.set_result(result)  # type: ignore[arg-type]
            else:
                waiter.set_exception(exc)

    def _drop(self, key: str, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
