"""MicroBatcher: requests made while a batch is being prepared or is in flight share the next one.

Every batching loop of the stores is this one class: SQLite's batched reads, its group commit and
its lease claims; Redis's MGETs, its MULTI/EXEC writes and its lease pipelines. 1,000 concurrent
lookups cost a couple of round trips instead of 1,000. Touched only from the event loop's thread,
so no lock is needed.

One exception policy: the exception of a batch reaches every submitter of that batch, unchanged,
and the next batch still runs, unless ``shares_outage(exc)`` says the failure is an outage that the
queued items would only meet again (a write lock held elsewhere, a server that is down): then they
fail at once with it instead of each waiting out its own timeout. A ``BaseException`` that is not
an ``Exception`` (cancellation of the drain, ``KeyboardInterrupt``) also propagates out of the
drain after failing the batch.

A submitter cancelled while its item is in a batch does not undo the item (it may already be on its
way to the server); ``on_abandoned(item, result)`` hears of each such result when its batch lands,
so that an owner can undo what must not outlive its submitter (a lease claim that won).

One event-loop policy: a batcher follows the running loop, once the loop it served has stopped
(``LoopBinding``, shared by the batchers of one store). Work queued by a loop that has since
stopped (a finished ``asyncio.run``) was never acknowledged to anyone and can never complete, so it
is dropped, and ``on_new_loop`` lets the owner drop what else belonged to that loop (connections)
before the first item of the new loop is queued. A store used from a second ``asyncio.run``
therefore reconnects; it never raises "Event loop is closed". A second loop that submits while the
first still runs (another thread) gets ``EventLoopConflictError``, and the first loop's queue is
left as it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, final

from .._loops import LoopBinding

__all__ = ["MicroBatcher"]

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

_UNBOUNDED = 1 << 62


@final
class MicroBatcher(Generic[ItemT, ResultT]):
    """Runs ``run(items)`` once per batch of submitted items; each submitter gets its own result.

    ``run`` returns one result per item, in order. ``max_batch`` bounds the items of one run (the
    rest wait for the next); by default every item waiting shares one run. ``loop_binding``: the
    ``LoopBinding`` shared with the owner's other loop-bound parts (by default one of its own).
    """

    __slots__ = (
        "_drain",
        "_loop",
        "_loop_binding",
        "_max",
        "_on_abandoned",
        "_on_new_loop",
        "_pending",
        "_run",
        "_shares_outage",
    )

    def __init__(
        self,
        run: Callable[[list[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        max_batch: int = _UNBOUNDED,
        on_new_loop: Callable[[], None] | None = None,
        on_abandoned: Callable[[ItemT, ResultT], None] | None = None,
        shares_outage: Callable[[Exception], bool] | None = None,
        loop_binding: LoopBinding | None = None,
    ) -> None:
        self._run = run
        self._loop_binding = loop_binding if loop_binding is not None else LoopBinding("a MicroBatcher")
        self._max = max_batch
        self._on_new_loop = on_new_loop
        self._on_abandoned = on_abandoned
        self._shares_outage = shares_outage
        # Who touches these: only the event loop's thread, between awaits.
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """Items queued and not yet taken by a run."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """True while a drain is running or items are waiting for one (on the running loop)."""
        return self._drain is not None or bool(self._pending)

    def follow_loop(self) -> asyncio.AbstractEventLoop:
        """Adopt the running loop, dropping what a previous (stopped) loop left; return the loop.

        ``EventLoopConflictError`` if the loop served so far is still running (another thread).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop_binding.bind(loop)  # before anything of the loop served so far is dropped
            stale = self._loop is not None
            self._loop = loop
            self._pending, self._drain = [], None
            if stale and self._on_new_loop is not None:
                self._on_new_loop()
        return loop

    def submit_nowait(self, item: ItemT) -> asyncio.Future[ResultT]:
        """Queue ``item`` for the next batch; the future gets its result or the batch's exception.

        For callers that must learn the outcome even if they are cancelled meanwhile (a lease claim
        that won must be released): await it under ``asyncio.shield`` and inspect it afterwards.
        """
        loop = self.follow_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._pending.append((item, future))
        if self._drain is None:
            self._drain = loop.create_task(self._drain_all())
        return future

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` for the next batch and wait for its result (or the batch's exception)."""
        return await self.submit_nowait(item)

    def submit_detached(self, item: ItemT) -> None:
        """Queue ``item`` with nobody waiting for it; a failure is only logged (bookkeeping, cleanup)."""
        self.submit_nowait(item).add_done_callback(_log_failure)

    async def wait_idle(self) -> None:
        """Return once nothing is queued or running (what was queued has landed, either way)."""
        while self._drain is not None and self._loop is asyncio.get_running_loop():
            await asyncio.gather(self._drain, return_exceptions=True)

    async def _drain_all(self) -> None:
        me = asyncio.current_task()
        try:
            while self._pending and self._drain is me:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                try:
                    results = await self._run([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
                except GeneratorExit:
                    # Destroyed with a loop that was closed: taking the next batch (queued by a
                    # live loop) here would strand it, since this coroutine can no longer await.
                    raise
                except BaseException as exc:
                    if (
                        isinstance(exc, Exception)
                        and self._shares_outage is not None
                        and self._shares_outage(exc)
                    ):
                        batch, self._pending = batch + self._pending, []  # queued meanwhile: the same outage
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (item, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                    elif future.cancelled() and self._on_abandoned is not None:
                        self._on_abandoned(item, result)
        finally:
            if self._drain is me:  # not a newer drain started after this one's loop died
                self._drain = None


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("a detached batch item failed: %s", future.exception())
