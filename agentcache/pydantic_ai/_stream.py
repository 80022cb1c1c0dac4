"""Streams: the live tee of an upstream stream, and the replay of a stored response as a stream.

The caller that makes the upstream call streams it live and pushes every event into a ``Tee``;
other callers of the same key in this process (``LIVE``) follow the same events from the first
one. A caller served from the cache gets the stored response replayed as text deltas (a word at a
time, optionally ``pace`` seconds apart), so ``stream_text()`` looks live instead of jumping to the
full text. PartEnd and FinalResult events are not replayed: ``StreamedResponse.__aiter__`` derives
them again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from copy import copy
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, final

from pydantic_ai.messages import (
    ModelResponse,
    ModelResponseStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
)
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.usage import RequestUsage

from ._values import NotStored

__all__ = ["LIVE", "CachedStream", "LiveStreams", "Tee", "retrieve_outcome"]

_WORDS = re.compile(r"\S*\s*")
_pause = asyncio.sleep  # between replayed deltas; a module attribute so tests can observe it


@final
class Tee:
    """The events of one upstream stream, kept for every consumer following it live."""

    __slots__ = ("closed", "events", "upstream", "users", "waiters")

    def __init__(self) -> None:
        self.events: list[ModelResponseStreamEvent] = []
        self.upstream: StreamedResponse | None = None
        self.closed = False
        self.users = 0
        self.waiters: list[asyncio.Future[None]] = []

    def push(self, event: ModelResponseStreamEvent) -> None:
        self.events.append(event)
        self.wake()

    def close(self) -> None:
        self.closed = True
        self.wake()

    def wake(self, _: object = None) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        await waiter


@final
class LiveStreams:
    """The tees of the upstream streams in progress, by (id(cache), stored key).

    An entry lives only while somebody uses it, so a reused ``id()`` never finds a stale one.
    """

    __slots__ = ("_tees",)

    def __init__(self) -> None:
        self._tees: dict[tuple[int, str], Tee] = {}

    def join(self, key: tuple[int, str]) -> Tee:
        """The tee of ``key``'s stream in progress, or a new one; counted as one more user."""
        tee = self._tees.get(key)
        if tee is None:
            tee = self._tees[key] = Tee()
        tee.users += 1
        return tee

    def finished(self, key: tuple[int, str], tee: Tee) -> None:
        """The upstream stream of ``tee`` ended: later callers of ``key`` start afresh."""
        if self._tees.get(key) is tee:
            del self._tees[key]

    def leave(self, key: tuple[int, str], tee: Tee) -> None:
        """One user of ``tee`` is done with it."""
        tee.users -= 1
        if tee.users == 0:
            self.finished(key, tee)


LIVE = LiveStreams()


def retrieve_outcome(fetch: asyncio.Future[Any]) -> None:
    """Mark a stream's outcome as seen: an abandoned stream's failure is nobody's unhandled error."""
    if not fetch.cancelled():
        fetch.exception()


class CachedStream(StreamedResponse):
    """A stream that follows a live upstream call (through a ``Tee``) or replays a stored response.

    ``fetch`` is the cache lookup in progress; ``answer()`` turns its outcome into this caller's
    response (called once, after the events).
    """

    def __init__(
        self,
        parameters: ModelRequestParameters,
        *,
        tee: Tee,
        fetch: asyncio.Future[Any],
        answer: Callable[[], Coroutine[Any, Any, ModelResponse]],
        pace: float | None,
        model_name: str,
    ) -> None:
        super().__init__(parameters)
        self._tee = tee
        self._fetch = fetch
        self._answer = answer
        self._pace = pace
        self._fallback_model_name = model_name
        self._final: ModelResponse | None = None
        self._started = datetime.now(timezone.utc)

    async def ready(self) -> None:
        """Wait for the first live event or the answer; raise now if the request failed."""
        while not self._tee.events and not self._tee.closed and not self._fetch.done():
            await self._tee.changed()
        if self._fetch.done() and not self._fetch.cancelled():
            error = self._fetch.exception()
            if error is not None and not isinstance(error, NotStored):
                raise error

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        tee, seen = self._tee, 0
        while True:
            if seen < len(tee.events):
                event = tee.events[seen]
                seen += 1
                if isinstance(event, (PartStartEvent, PartDeltaEvent)):
                    event = copy(event)  # __aiter__ annotates events; the others share the tee's
                    self._parts_manager.apply_event(event)
                    yield event
                continue
            if tee.closed or self._fetch.done():
                break
            await tee.changed()
        final = await self._answer()
        if seen == 0:
            async for event in self._replay(final):
                yield event
        self._final = final

    async def _replay(self, response: ModelResponse) -> AsyncIterator[ModelResponseStreamEvent]:
        pace = self._pace
        first = True
        for index, part in enumerate(response.parts):
            if not isinstance(part, TextPart) or not part.content:
                yield self._parts_manager.handle_part(vendor_part_id=index, part=part)
                continue
            chunks = [c for c in _WORDS.findall(part.content) if c]
            if pace and not first:
                await _pause(pace)
            first = False
            yield self._parts_manager.handle_part(vendor_part_id=index, part=replace(part, content=chunks[0]))
            for chunk in chunks[1:]:
                if pace:
                    await _pause(pace)
                for event in self._parts_manager.handle_text_delta(vendor_part_id=index, content=chunk):
                    yield event

    async def close_stream(self) -> None:
        if not self._fetch.done():
            self._fetch.cancel()

    def get(self) -> ModelResponse:
        if self._final is not None and self._finished:
            return self._final
        return super().get()

    @property
    def usage(self) -> RequestUsage:
        return self._final.usage if self._final is not None else RequestUsage()

    @property
    def model_name(self) -> str:
        if self._final is not None:
            return self._final.model_name or ""
        upstream = self._tee.upstream
        return upstream.model_name if upstream is not None else self._fallback_model_name

    @property
    def provider_name(self) -> str | None:
        source = self._final or self._tee.upstream
        return source.provider_name if source is not None else None

    @property
    def provider_url(self) -> str | None:
        source = self._final or self._tee.upstream
        return source.provider_url if source is not None else None

    @property
    def timestamp(self) -> datetime:
        source = self._final or self._tee.upstream
        return source.timestamp if source is not None else self._started
