"""MicroBatcher: requests made while a batch is being prepared or is in flight share the next one.

Used by the lease implementations, where 1,000 concurrent misses would otherwise mean 1,000 claim
and 1,000 release round trips: each batch is one pipeline (Redis) or one statement of one group
commit (SQLite). Touched only from the event loop's thread, so no lock is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class MicroBatcher(Generic[ItemT, ResultT]):
    """Runs ``run(items)`` once per batch of submitted items; each submitter gets its result."""

    __slots__ = ("_drain", "_max", "_pending", "_run")

    def __init__(
        self, run: Callable[[list[ItemT]], Awaitable[Sequence[ResultT]]], max_batch: int = 1_000
    ) -> None:
        self._run = run
        self._max = max_batch
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` for the next batch and wait for its result (or the batch's exception)."""
        loop = asyncio.get_running_loop()
        if self._drain is not None and self._drain.get_loop() is not loop:
            # Left by an event loop that was closed with it pending: it will never run again,
            # and nobody is left to read what was queued for it.
            self._pending, self._drain = [], None
        future: asyncio.Future[ResultT] = loop.create_future()
        self._pending.append((item, future))
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_all())
        return await future

    async def _drain_all(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                try:
                    results = await self._run([item for item, _ in batch])
                except GeneratorExit:
                    # Destroyed with a loop that was closed: taking the next batch (queued by
                    # a live loop) here would strand it, since this coroutine cannot await.
                    raise
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            if self._drain is me:  # not a newer drain started after this one's loop died
                self._drain = None
