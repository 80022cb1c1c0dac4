"""LoopBinding: the one event loop an object's loop-bound state serves, handed over only once it stops.

A cache's flight table and a store's connections, batches and timers belong to the event loop that
made them (asyncio futures, locks, aiosqlite's result callbacks and redis-py's pools all do). Two
ways of reaching them from another loop look alike and must be told apart:

- **One loop after another** (``asyncio.run`` twice in a script, one pytest test after the next,
  each call of a sync wrapper): the previous loop has stopped, so what it left can never run
  again. The new loop takes over; its owner drops the old loop's state (``follow_loop`` of the
  batchers, the SQLite file and the Redis connection) and reconnects.
- **Two loops at once** (a thread of its own running its own loop, with one shared cache): the
  first loop is still running, and taking its state over would strand its pending work (a hang,
  answers never stored) or feed it to the wrong loop ("bound to a different event loop"). That is
  refused with ``EventLoopConflictError`` before anything is touched; the first loop keeps going.

The check runs only when an owner sees a loop other than its own (its fast ``is`` comparison on
every call stays as it was), so a hot path pays nothing for it. L1 hits reach no loop-bound state
and are not checked.
"""

from __future__ import annotations

import asyncio
import threading
from typing import final

from .errors import EventLoopConflictError

__all__ = ["LoopBinding"]


@final
class LoopBinding:
    """The event loop ``owner`` serves; a second loop may take over only once that one has stopped.

    Shared by the parts of one owner (a store's connection and batchers), so that none of them
    adopts a loop the others refuse.
    """

    __slots__ = ("_lock", "_thread", "loop", "owner")

    def __init__(self, owner: str) -> None:
        self.owner = owner  # named in the error: "SQLite store /path/cache.db", "AgentCache(...)"
        # Who touches these: any thread (that is the point), under the lock. Only a change of loop
        # takes it, which is rare, so nothing hot waits for it.
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = ""  # the name of the thread that bound ``loop``

    def __repr__(self) -> str:
        return f"LoopBinding({self.owner!r}, {'bound' if self.loop is not None else 'unbound'})"

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``loop`` (the running one) from now on; refuse it while the loop served so far runs."""
        with self._lock:
            if self.loop is loop:
                return
            self._refuse_if_busy(loop)
            self.loop = loop
            self._thread = threading.current_thread().name

    def check(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raise as ``bind`` would, binding nothing (for work that only schedules on ``loop``)."""
        with self._lock:
            if self.loop is not loop:
                self._refuse_if_busy(loop)

    def _refuse_if_busy(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = self.loop
        # Another loop that is running runs in another thread: one thread runs one loop at a time.
        if previous is not None and previous is not loop and previous.is_running():
            raise EventLoopConflictError(
                f"{self.owner} is serving an event loop that is still running in thread "
                f"{self._thread!r}, and was now called from another one (thread "
                f"{threading.current_thread().name!r}); its connections, batches and pending calls "
                "belong to the first loop, so it serves one running loop at a time. Create one "
                "AgentCache per thread or event loop: instances on one sqlite:/// or redis:// URL "
                "share their entries (one loop after another, such as asyncio.run twice, is fine)"
            )
