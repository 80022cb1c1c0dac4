"""pydantic-ai integration: serve every model request of an agent from an ``AgentCache``.

``CachedModel(model, cache=cache)`` wraps one model; ``CacheCapability(cache)`` wraps whatever model
serves each request of an agent (it returns a ``CachedModel`` from ``get_wrapper_model``, so both
routes build identical keys). This is the only module of agentcache that imports pydantic_ai.

What a key is made of (``request_key``, public so two requests can be compared):

- the wrapped model's ``model_id``, ``KEY_SCHEMA`` (bumped whenever these rules change);
- the messages as sent, minus what changes on every run without changing the request: each
  message's ``timestamp``, ``run_id``, ``conversation_id``, and the response bookkeeping stamped
  after the fact (``usage``, ``model_id``, ``provider_response_id``, ``provider_details``,
  ``finish_reason``, ``history_digest``, ``failed_attempts``, ``workspace_ref``, ``metadata``);
  each part's own top-level ``timestamp`` (a "timestamp" inside tool args or content is kept);
  tool-call ids renamed ``tc0, tc1...`` in order of first appearance (generated ids are random,
  provider ids differ per live call; renaming keeps the call/return pairing);
- the merged settings minus transport-only ones (``TRANSPORT_SETTINGS``): temperature, seed,
  max_tokens, provider-prefixed keys and ``extra_body`` all stay;
- the request parameters: tool definitions (without ``metadata``, which is never sent, and
  ``timeout``), native tools, output mode, tools and schema, instructions; the set-valued fields are
  sorted so keys do not depend on ``PYTHONHASHSEED``.

Values are the response as pydantic-ai's own JSON (``ModelMessagesTypeAdapter``): an exact round
trip, and every hit builds a fresh ``ModelResponse`` (the agent mutates responses in place). Only
``state == 'complete'`` responses are stored; a streamed response only when its stream ran to the
end. A hit reports zero usage to pydantic-ai by default (the run's usage shows what was really
spent) and puts what it saved in ``response.metadata['agentcache']``; ``hit_usage='replay'`` keeps
the stored usage instead.

Streaming: the caller that makes the upstream call streams it live; other callers of the same key in
this process (same cache, ``samples=1``) follow the same live stream from its first event; hits are
replayed as a stream of text deltas, optionally paced (``pace`` seconds between deltas).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager, suppress
from copy import copy
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

try:
    from opentelemetry import trace
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.messages import (
        ModelMessage,
        ModelMessagesTypeAdapter,
        ModelResponse,
        ModelResponseStreamEvent,
        PartDeltaEvent,
        PartStartEvent,
        TextPart,
    )
    from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
    from pydantic_ai.models.wrapper import WrapperModel
    from pydantic_ai.settings import ModelSettings
    from pydantic_ai.tools import RunContext
    from pydantic_ai.usage import RequestUsage
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'agentcache.pydantic_ai needs pydantic-ai: pip install "agentcache[pydantic-ai]"'
    ) from exc

from .cache import AgentCache, Fetched
from .errors import ConfigurationError
from .keys import canonical_json

__all__ = [
    "KEY_SCHEMA",
    "TRANSPORT_SETTINGS",
    "CacheCapability",
    "CachedModel",
    "request_key",
]

KEY_SCHEMA = "agentcache.pydantic_ai/1"
"""Part of every key: changes whenever what goes into a key changes, so old entries never match."""

TRANSPORT_SETTINGS = frozenset(
    {"timeout", "request_timeout", "first_event_timeout", "max_retries", "extra_headers"}
)
"""Settings that change how a request travels, never what the model answers: left out of keys."""

HitUsage = Literal["zero", "replay"]

_MESSAGE_VOLATILE = frozenset(
    {
        "timestamp",
        "run_id",
        "conversation_id",
        "usage",
        "model_id",
        "provider_response_id",
        "provider_details",
        "finish_reason",
        "history_digest",
        "failed_attempts",
        "workspace_ref",
        "metadata",
    }
)
_PARAMETER_SETS = ("revealed_tool_names", "introduced_tool_names", "deferred_capability_ids")
_TOOL_EXCLUDE = {"__all__": {"metadata", "timeout"}}
# Excluded before serialising: ToolDefinition.metadata may hold objects that cannot be serialised.
_PARAMETERS_EXCLUDE: dict[str, Any] = {"function_tools": _TOOL_EXCLUDE, "output_tools": _TOOL_EXCLUDE}
_PARAMETERS_ADAPTER: TypeAdapter[ModelRequestParameters] | None = None
_WORDS = re.compile(r"\S*\s*")
_pause = asyncio.sleep  # between replayed deltas; a module attribute so tests can observe it


# -- keys -------------------------------------------------------------------------------------


def request_key(
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    *,
    model_id: str,
) -> dict[str, Any]:
    """The key material of one model request: JSON values, identical across runs and processes."""
    return {
        "schema": KEY_SCHEMA,
        "model": model_id,
        "messages": _messages_material(messages),
        "settings": _settings_material(model_settings),
        "parameters": _parameters_material(model_request_parameters),
    }


def _messages_material(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    tool_call_ids: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in ModelMessagesTypeAdapter.dump_python(messages, mode="json"):
        kept = {k: v for k, v in message.items() if k not in _MESSAGE_VOLATILE}
        kept["parts"] = [_part_material(part, tool_call_ids) for part in message["parts"]]
        out.append(kept)
    return out


def _part_material(part: dict[str, Any], tool_call_ids: dict[str, str]) -> dict[str, Any]:
    kept = {k: v for k, v in part.items() if k != "timestamp"}
    call_id = kept.get("tool_call_id")
    if isinstance(call_id, str):
        kept["tool_call_id"] = tool_call_ids.setdefault(call_id, f"tc{len(tool_call_ids)}")
    return kept


def _settings_material(settings: ModelSettings | None) -> dict[str, Any]:
    if not settings:
        return {}
    return {k: _jsonable(v) for k, v in settings.items() if k not in TRANSPORT_SETTINGS}


def _parameters_material(parameters: ModelRequestParameters) -> dict[str, Any]:
    global _PARAMETERS_ADAPTER
    if _PARAMETERS_ADAPTER is None:  # built on first use: import stays cheap
        _PARAMETERS_ADAPTER = TypeAdapter(ModelRequestParameters)
    dumped: dict[str, Any] = _PARAMETERS_ADAPTER.dump_python(
        parameters, mode="json", exclude=_PARAMETERS_EXCLUDE
    )
    for name in _PARAMETER_SETS:
        if name in dumped:
            dumped[name] = sorted(dumped[name])
    return dumped


def _jsonable(value: Any) -> Any:
    """Plain JSON values; sets become sorted lists (their iteration order depends on the hash seed)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=canonical_json)
    return to_jsonable_python(value)


# -- values -----------------------------------------------------------------------------------


def _dump(response: ModelResponse) -> str:
    return ModelMessagesTypeAdapter.dump_json([response]).decode()


def _load(text: str) -> ModelResponse:
    (message,) = ModelMessagesTypeAdapter.validate_json(text)
    if not isinstance(message, ModelResponse):
        raise ValidationError.from_exception_data("ModelResponse", [])
    return message


def _describe(response: ModelResponse, model_id: str) -> dict[str, Any]:
    """What the stats need: model, tokens, and the cost where genai-prices knows the model."""
    usage = response.usage
    meta: dict[str, Any] = {
        "model": response.model_name or model_id,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    }
    cost = usage.cost
    if cost is None and response.model_name:
        with suppress(LookupError, ValueError, AssertionError):  # unknown model: cost unknown
            cost = response.cost().total_price
    if cost is not None:
        meta["cost"] = float(cost)
    return meta


class _NotStored(Exception):
    """Carries an answer that must reach the callers but not the store (suspended, incomplete)."""

    def __init__(self, text: str) -> None:
        super().__init__("response not complete; not stored")
        self.text = text


class _Undecodable(Exception):
    """A stored response this pydantic-ai cannot parse (for example, an older message format)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"stored response {key} cannot be parsed")
        self.key = key


# -- live streams -----------------------------------------------------------------------------


class _Tee:
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


def _retrieve_outcome(fetch: asyncio.Future[Any]) -> None:
    """Mark a stream's outcome as seen: an abandoned stream's failure is nobody's unhandled error."""
    if not fetch.cancelled():
        fetch.exception()


# Consumers of one stored key in this process share one _Tee: (id(cache), stored key) -> tee.
# An entry lives only while somebody uses it, so a reused id() can never find a stale one.
_LIVE: dict[tuple[int, str], _Tee] = {}


class _CachedStream(StreamedResponse):
    """A stream that follows a live upstream call (through a _Tee) or replays a stored response."""

    def __init__(
        self,
        model: CachedModel,
        parameters: ModelRequestParameters,
        tee: _Tee,
        fetch: asyncio.Future[Fetched[str]],
        made: list[ModelResponse],
    ) -> None:
        super().__init__(parameters)
        self._model = model
        self._tee = tee
        self._fetch = fetch
        self._made = made
        self._final: ModelResponse | None = None
        self._started = datetime.now(timezone.utc)

    async def ready(self) -> None:
        """Wait for the first live event or the answer; raise now if the request failed."""
        while not self._tee.events and not self._tee.closed and not self._fetch.done():
            await self._tee.changed()
        if self._fetch.done() and not self._fetch.cancelled():
            error = self._fetch.exception()
            if error is not None and not isinstance(error, _NotStored):
                raise error

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        tee, seen = self._tee, 0
        while True:
            if seen < len(tee.events):
                event = tee.events[seen]
                seen += 1
                # PartEnd and FinalResult events are re-derived by StreamedResponse.__aiter__.
                if isinstance(event, (PartStartEvent, PartDeltaEvent)):
                    event = copy(event)  # __aiter__ annotates events; others share the tee's
                    self._parts_manager.apply_event(event)
                    yield event
                continue
            if tee.closed or self._fetch.done():
                break
            await tee.changed()
        final = await self._model._answer(self._fetch, self._made)
        if seen == 0:
            async for event in self._replay(final):
                yield event
        self._final = final

    async def _replay(self, response: ModelResponse) -> AsyncIterator[ModelResponseStreamEvent]:
        pace = self._model.pace
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
        return upstream.model_name if upstream is not None else self._model.model_name

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


# -- the model wrapper and the capability -----------------------------------------------------


def _check_options(cache: object, hit_usage: object, samples: object, pace: object) -> None:
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
    serves them in rotation; ``pace`` spaces replayed text deltas; ``hit_usage`` is ``"zero"`` or
    ``"replay"`` (see the module docstring).
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
        super().__init__(wrapped)
        _check_options(cache, hit_usage, samples, pace)
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
        """The key material this model uses for a request (see ``request_key``)."""
        return request_key(messages, model_settings, model_request_parameters, model_id=self.wrapped.model_id)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        material = self.request_key(messages, model_settings, model_request_parameters)
        made: list[ModelResponse] = []

        async def call(_material: object) -> str:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
            made.append(response)
            return self._storable(response)

        try:
            return await self._answer(self._fetch(material, call, made), made)
        except _Undecodable as stale:
            # Written by a pydantic-ai whose message format this one cannot read: a miss, the
            # entry dropped with a warning (DESIGN §5), and one fresh call.
            await self.cache._evict(stale.key, reason=str(stale.__cause__))
            return await self._answer(self._fetch(material, call, made), made)

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
            tee = _LIVE.get(live_key) or _LIVE.setdefault(live_key, _Tee())
        else:
            tee = _Tee()
        tee.users += 1
        made: list[ModelResponse] = []

        async def call(_material: object) -> str:
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
                if live_key is not None and _LIVE.get(live_key) is tee:
                    del _LIVE[live_key]
            made.append(response)
            return self._storable(response)

        fetch = asyncio.ensure_future(self._fetch(material, call, made))
        fetch.add_done_callback(tee.wake)
        fetch.add_done_callback(_retrieve_outcome)
        try:
            stream = _CachedStream(self, model_request_parameters, tee, fetch, made)
            await stream.ready()
            yield stream
        finally:
            tee.users -= 1
            if tee.users == 0 and live_key is not None and _LIVE.get(live_key) is tee:
                del _LIVE[live_key]
            if not fetch.done():  # abandoned: the flight cancels the call if nobody else waits
                fetch.cancel()

    # -- shared by both paths -----------------------------------------------------------------

    def _storable(self, response: ModelResponse) -> str:
        text = _dump(response)
        if response.state != "complete":
            raise _NotStored(text)
        return text

    async def _fetch(self, material: dict[str, Any], call: Any, made: list[ModelResponse]) -> Any:
        model_id = self.wrapped.model_id
        return await self.cache.fetch(
            material,
            call,
            ttl=self.ttl,
            namespace=self.namespace,
            label=self.cache_label,
            describe=lambda _text: _describe(made[0], model_id),
            samples=self.samples,
        )

    async def _answer(self, fetching: Awaitable[Fetched[str]], made: list[ModelResponse]) -> ModelResponse:
        """This caller's response: its own call's object, or a fresh copy of the shared answer."""
        span = trace.get_current_span()
        try:
            fetched = await fetching
        except _NotStored as not_stored:
            return made[0] if made else _load(not_stored.text)
        if span.is_recording():
            span.set_attribute("agentcache.hit", fetched.source in ("l1", "store"))
            span.set_attribute("agentcache.coalesced", fetched.source == "coalesced")
            span.set_attribute("agentcache.key", fetched.key)
        if fetched.source == "call":
            return made[0]
        try:
            response = _load(fetched.value)
        except ValidationError as exc:
            raise _Undecodable(fetched.key) from exc
        usage = response.usage
        saved = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        info: dict[str, Any] = {"source": fetched.source, "key": fetched.key, "saved_usage": saved}
        if fetched.entry is not None and "cost" in fetched.entry.meta:
            info["saved_cost"] = fetched.entry.meta["cost"]
        response.metadata = {**(response.metadata or {}), "agentcache": info}
        if self.hit_usage == "zero":
            response.usage = RequestUsage()
        return response


class CacheCapability(AbstractCapability[Any]):
    """Caches every model request of an agent: ``Agent(model, capabilities=[CacheCapability(cache)])``.

    It wraps the model serving each request in a ``CachedModel`` with the same options, so its keys
    are exactly those of ``CachedModel``; a model that is already a ``CachedModel`` is left alone.
    """

    def __init__(
        self,
        cache: AgentCache,
        *,
        label: str | None = None,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        hit_usage: HitUsage = "zero",
        samples: int = 1,
        pace: float | None = None,
        id: str | None = None,
    ) -> None:
        self.id = id
        self.description = None
        self.defer_loading = False
        self.options: Mapping[str, Any] = {
            "cache": cache,
            "label": label,
            "ttl": ttl,
            "namespace": namespace,
            "hit_usage": hit_usage,
            "samples": samples,
            "pace": pace,
        }
        _check_options(cache, hit_usage, samples, pace)  # fail now, not on the first request

    # Two capabilities are the same only if they are the same object (the dataclass base would
    # compare id/description/defer_loading only, making every CacheCapability equal).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"CacheCapability({shown})"

    def get_wrapper_model(self, model: Model) -> Model | None:
        if isinstance(model, CachedModel):
            return None
        return CachedModel(model, **self.options)
