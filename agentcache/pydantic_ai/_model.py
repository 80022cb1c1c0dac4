"""CachedModel: a pydantic-ai model wrapper whose requests, plain and streamed, go through an AgentCache.

Each request is keyed by ``request_key`` and looked up with ``cache.fetch``, the response type
as ``value_type``: the core stores, decodes and shares answers across concurrent callers. What
this wrapper adds is pydantic-ai's side: streams (``_stream``), zero usage on hits with the saving
in ``response.metadata['agentcache']`` (``hit_usage='replay'`` keeps the stored usage), and the
``agentcache.*`` attributes on pydantic-ai's request span, and for a pydantic-evals run the repeat
index in the key and the hit counts in the report (``_evals``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from copy import deepcopy
from datetime import timedelta
from typing import Any, Literal

from opentelemetry import trace
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from .. import AgentCache, ConfigurationError, Fetched
from .._options import parse_ttl
from ._evals import current_run
from ._keys import request_key
from ._stream import LIVE, CachedStream, Tee, retrieve_outcome
from ._values import NotStored, describe, response_type, storable

__all__ = ["CachedModel", "HitUsage", "check_options"]

HitUsage = Literal["zero", "replay"]

_HIT_SOURCES = ("l1", "store")


def check_options(
    cache: object, hit_usage: object, samples: object, pace: object, ttl: float | timedelta | None
) -> None:
    """Raise ``ConfigurationError`` for options a CachedModel cannot work with."""
    parse_ttl(ttl)  # a bad ttl fails here, not at the first request
    if not isinstance(cache, AgentCache):
        raise ConfigurationError(f"cache must be an AgentCache, not {cache!r}")
    if hit_usage not in ("zero", "replay"):
        raise ConfigurationError(f"hit_usage must be 'zero' or 'replay', not {hit_usage!r}")
    if type(samples) is not int or samples < 1:
        raise ConfigurationError(f"samples must be a positive int, not {samples!r}")
    if pace is not None and not (type(pace) in (int, float) and pace >= 0):  # type: ignore[operator]
        raise ConfigurationError(f"pace must be None or seconds >= 0, not {pace!r}")


class CachedModel(WrapperModel):
    """A model whose requests (plain and streamed) are served from ``cache`` when seen before.

    ``label`` names this model in ``cache.stats.by_label`` (``Model.label`` is pydantic-ai's display
    name, so it is kept as ``cache_label``). ``samples=N`` keeps up to N answers per request and
    serves them in rotation; ``pace`` spaces replayed text deltas; ``hit_usage`` is ``"zero"`` (a
    hit reports no usage to pydantic-ai) or ``"replay"`` (it reports the stored usage).
    """

    def __init__(
        self,
        wrapped: Model | str,
        *,
        cache: AgentCache,
        label: str | None = None,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        hit_usage: HitUsage = "zero",
        samples: int = 1,
        pace: float | None = None,
    ) -> None:
        # pydantic-ai 2.62 types this argument as Model | KnownModelName, later versions as Model | str.
        super().__init__(wrapped)  # type: ignore[arg-type, unused-ignore]
        check_options(cache, hit_usage, samples, pace, ttl)
        self.cache = cache
        self.cache_label = label
        self.ttl = ttl
        self.namespace = namespace
        self.hit_usage: HitUsage = hit_usage
        self.samples = samples
        self.pace = pace

    def request_key(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> dict[str, Any]:
        """The key material this model uses for a request (see ``request_key``).

        A request made for repeat k > 0 of a pydantic-evals case adds ``"repeat": k`` (``_evals``).
        """
        material = request_key(messages, model_settings, model_request_parameters, model=self.wrapped)
        run = current_run()
        if run is not None and run.repeat:
            material["repeat"] = run.repeat
        return material

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        material = self.request_key(messages, model_settings, model_request_parameters)
        made: list[ModelResponse] = []  # the response of this caller's own upstream call, if any

        async def call(_material: object) -> ModelResponse:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
            made.append(response)
            return storable(response)

        return await self._answer(self._fetch(material, call), made)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        material = self.request_key(messages, model_settings, model_request_parameters)
        live_key: tuple[int, str] | None = None
        if self.samples == 1:  # with samples, one key's concurrent calls may be different slots
            live_key = (id(self.cache), self.cache.key(material, self.namespace))
            tee = LIVE.join(live_key)
        else:
            tee = Tee()
        made: list[ModelResponse] = []

        async def call(_material: object) -> ModelResponse:
            try:
                async with self.wrapped.request_stream(
                    messages, model_settings, model_request_parameters, run_context
                ) as upstream:
                    tee.upstream = upstream
                    async for event in upstream:
                        tee.push(event)
                    response = upstream.get()
            finally:
                tee.close()
                if live_key is not None:
                    LIVE.finished(live_key, tee)
            made.append(response)
            return storable(response)

        fetch = asyncio.ensure_future(self._fetch(material, call))
        fetch.add_done_callback(tee.wake)
        fetch.add_done_callback(retrieve_outcome)
        try:
            stream = CachedStream(
                model_request_parameters,
                tee=tee,
                fetch=fetch,
                answer=lambda: self._answer(fetch, made),
                pace=self.pace,
                model_name=self.model_name,
            )
            await stream.ready()
            yield stream
        finally:
            if live_key is not None:
                LIVE.leave(live_key, tee)
            if not fetch.done():  # abandoned: the flight cancels the call if nobody else waits
                fetch.cancel()

    # -- shared by both paths -----------------------------------------------------------------

    async def _fetch(
        self, material: dict[str, Any], call: Callable[[object], Awaitable[ModelResponse]]
    ) -> Fetched[ModelResponse]:
        model_id = self.wrapped.model_id
        return await self.cache.fetch(
            material,
            call,
            ttl=self.ttl,
            namespace=self.namespace,
            value_type=response_type(),
            label=self.cache_label,
            describe=lambda response: describe(response, model_id),
            samples=self.samples,
        )

    async def _answer(
        self, fetching: Awaitable[Fetched[ModelResponse]], made: list[ModelResponse]
    ) -> ModelResponse:
        """This caller's response: its own call's object, or a fresh one of the shared answer."""
        span = trace.get_current_span()
        run = current_run()
        try:
            fetched = await fetching
        except NotStored as not_stored:
            if run is not None:
                run.count("call" if made else "coalesced")
            return made[0] if made else not_stored.copy()
        if run is not None:
            run.count(fetched.source)
        if span.is_recording():
            span.set_attribute("agentcache.hit", fetched.source in _HIT_SOURCES)
            span.set_attribute("agentcache.coalesced", fetched.source == "coalesced")
            span.set_attribute("agentcache.key", fetched.key)
        response = fetched.value
        if fetched.source == "call":
            return response
        if fetched.entry is None:
            # Not stored (it could not be encoded), so callers were handed one shared object.
            response = deepcopy(response)
        usage = response.usage
        saved = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        info: dict[str, Any] = {"source": fetched.source, "key": fetched.key, "saved_usage": saved}
        if fetched.entry is not None and "cost" in fetched.entry.meta:
            info["saved_cost"] = fetched.entry.meta["cost"]
        response.metadata = {**(response.metadata or {}), "agentcache": info}
        if self.hit_usage == "zero":
            response.usage = RequestUsage()
        return response
