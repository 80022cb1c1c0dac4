"""SingleFlight: merge concurrent identical calls into one task; it keeps no results.

The rules (DESIGN §3), and who may touch what: ``_flights`` and each ``_Flight.waiters`` are read and
written only from the event loop's thread, between awaits, so no lock is needed.

- The first caller of a key starts the call in its own task; later callers await that task.
- Every caller awaits through ``asyncio.shield``: cancelling one caller never cancels the others.
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
        self.waiters = 0


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
        shared = flight is not None
        if flight is None:
            task: asyncio.Task[T] = asyncio.ensure_future(start())
            flight = _Flight(task)
            self._flights[key] = flight
            task.add_done_callback(functools.partial(self._land, key, flight))
        flight.waiters += 1
        try:
            result = await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
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
        if not flight.task.cancelled():
            # Mark the exception retrieved: the waiters have seen it, or nobody was left to.
            flight.task.exception()

    def _drop(self, key: str, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
