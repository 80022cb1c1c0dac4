"""The key rules: what of a pydantic-ai model request goes into its cache key, field by field.

A key is built from exactly what is sent (``request_key``): ``KEY_SCHEMA``, the wrapped model's
``model_id``, the API it speaks, the messages, the merged settings and the request parameters.
Every field of every message, part, settings, parameters and tool-definition class is classified
in one of the tables below as kept, renamed or left out (with the reason); a test compares the
tables with the installed pydantic-ai, so a field added by a new release is noticed, not guessed.
A field missing from the tables is kept: an unknown field may cost a miss, never a wrong answer.

- The API (``api_identity``): the class of the model that talks to the provider (wrappers such as
  instrumentation are looked through; a ``FallbackModel`` adds its models'), its ``system``, and
  its base URL without credentials (``endpoint``): Chat Completions and Responses of one model
  name, or a local server and a hosted one, are different requests.
- Renamed: ids that differ on every live run although the request means the same. Tool-call ids
  become ``tc0, tc1, ...`` and provider output-item ids (``TextPart.id``, ``ToolCallPart.id``,
  ``ThinkingPart.id``: ``msg_...``, ``fc_...``, ``rs_...``) become ``id0, id1, ...``, each in
  order of first appearance. Renaming keeps what the ids say (which return answers which call,
  which items are the same item) and drops only their spelling; reasoning models do send item ids
  back, so they are renamed, not dropped.
- One request, one key on every supported pydantic-ai (``OLDEST_PYDANTIC_AI`` up to the newest
  2.x): a field added after the oldest version is filled in, in an older version's dump, with the
  value newer versions dump when the request does not use it (``ADDED_FIELDS``), so what is sent
  alike is keyed alike.
- Left out: per-run stamps (timestamps, run and conversation ids), bookkeeping stamped after the
  response (usage, ``model_id``, ``finish_reason``...), application ``metadata`` (never sent),
  transport settings (``TRANSPORT_SETTINGS``) and provider prompt-caching hints (settings, the
  resolved ``cache`` parameter and ``CachePoint`` markers in prompts): they change how a request
  travels or what it costs, never the answer. Sets are sorted (their order follows the hash seed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_core import to_jsonable_python

__all__ = [
    "ADDED_FIELDS",
    "ADDED_KINDS",
    "ADDED_SETTINGS",
    "KEY_SCHEMA",
    "MESSAGE_RULES",
    "OLDEST_PYDANTIC_AI",
    "PARAMETER_RULES",
    "PART_RULES",
    "PROMPT_CACHE_SETTINGS",
    "SETTINGS_KEPT",
    "SETTINGS_LEFT_OUT",
    "TOOL_RULES",
    "TRANSPORT_SETTINGS",
    "FieldRules",
    "api_identity",
    "endpoint",
    "request_key",
]

KEY_SCHEMA = "agentcache.pydantic_ai/2"
"""Part of every key: changes whenever what goes into a key changes, so old entries never match."""


@dataclass(frozen=True)
class FieldRules:
    """How each field of one pydantic-ai class enters a key: kept as is, renamed, or left out."""

    kept: frozenset[str]
    renamed: Mapping[str, str] = field(default_factory=dict)  # field -> prefix of its stand-ins
    left_out: Mapping[str, str] = field(default_factory=dict)  # field -> why it is not in the key

    def classified(self) -> frozenset[str]:
        """Every field these rules name."""
        return self.kept | self.renamed.keys() | self.left_out.keys()


# -- why a field is left out (the reasons the tables cite) -----------------------------------

_PER_RUN = "stamped anew on every run"
_AFTER = "the response's bookkeeping, different on every live call; not what the model reads"
_APP_DATA = "application data, never sent to the model"
_EXCLUDED = "excluded from pydantic's dump: telemetry, or a copy of a setting"
_LOCAL = "decides how the tool runs locally; never sent"
_UNSERIALISABLE = "never sent; may hold live objects"
_TRANSPORT = "how the request travels, not what it asks"
_PROMPT_CACHE = "a provider prompt-caching hint (or its diagnostics): changes the price, not the answer"

_TOOL_CALL = {"tool_call_id": "tc"}  # pairs a call with its return; spelled anew on every run
_ITEM = {"id": "id"}  # a provider's output-item id (Responses API: msg_, fc_, rs_...)


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _rules(kept: str, renamed: Mapping[str, str] | None = None, **left_out: str) -> FieldRules:
    return FieldRules(_names(kept), dict(renamed or {}), left_out)


# -- messages and parts ----------------------------------------------------------------------

MESSAGE_RULES: Final[Mapping[str, FieldRules]] = {
    "request": _rules(
        "parts instructions kind state",
        timestamp=_PER_RUN,
        run_id=_PER_RUN,
        conversation_id=_PER_RUN,
        metadata=_APP_DATA,
    ),
    "response": _rules(
        # provider_name and canonical_system decide which provider data is sent back.
        "parts model_name kind provider_name provider_url canonical_system state",
        timestamp=_PER_RUN,
        run_id=_PER_RUN,
        conversation_id=_PER_RUN,
        usage=_AFTER,
        model_id=_AFTER,
        provider_details=_AFTER,
        provider_response_id=_AFTER,
        finish_reason=_AFTER,
        history_digest=_AFTER,
        failed_attempts=_AFTER,
        workspace_ref=_AFTER,
        metadata=_APP_DATA,
    ),
}
"""Per message ``kind``."""

_TOOL_RETURN = _rules(
    "tool_name content tool_kind outcome retry part_kind",
    _TOOL_CALL,
    timestamp=_PER_RUN,
    metadata=_APP_DATA,
)
_TOOL_CALL_PART = _rules(
    "tool_name args tool_kind provider_name provider_details part_kind", {**_TOOL_CALL, **_ITEM}
)
_NATIVE_RETURN = _rules(
    "tool_name content tool_kind outcome provider_name provider_details part_kind",
    _TOOL_CALL,
    timestamp=_PER_RUN,
    metadata=_APP_DATA,
)

PART_RULES: Final[Mapping[str, FieldRules]] = {
    # request parts
    "system-prompt": _rules(
        "content dynamic_ref context_id scope part_kind", timestamp=_PER_RUN, metadata=_APP_DATA
    ),
    "user-prompt": _rules("content part_kind", timestamp=_PER_RUN),
    "tool-return": _TOOL_RETURN,
    "retry-prompt": _rules("content tool_name part_kind", _TOOL_CALL, timestamp=_PER_RUN),
    "retry-feedback": _rules("content retry part_kind", timestamp=_PER_RUN),
    "tool-availability-delta": _rules("tools_added part_kind", _TOOL_CALL),
    "capability-load-delta": _rules("loaded part_kind", _TOOL_CALL),
    "model-settings-delta": _rules("settings top_level part_kind"),
    # InstructionDeltaPart.id names an instruction block ('capability:refunds'): stable, kept.
    "instruction-delta": _rules("id content base_hash part_kind"),
    "instruction-baseline": _rules("instructions part_kind"),
    # request and response parts
    "compaction": _rules("content provider_name provider_details part_kind", _ITEM, metadata=_APP_DATA),
    "speech": _rules(
        "speaker transcript audio interrupted_at_ms timestamps provider_name provider_details part_kind",
        _ITEM,
    ),
    # response parts
    "text": _rules("content provider_name provider_details citations part_kind", _ITEM),
    "tool-call": _TOOL_CALL_PART,
    "builtin-tool-call": _TOOL_CALL_PART,
    "builtin-tool-return": _NATIVE_RETURN,
    "thinking": _rules("content signature provider_name provider_details part_kind", _ITEM),
    "file": _rules("content provider_name provider_details part_kind", _ITEM),
}
"""Per ``part_kind`` (subclasses such as ``ToolSearchCallPart`` share their base class's kind)."""

_UNKNOWN_MESSAGE = _rules(
    "", timestamp=_PER_RUN, run_id=_PER_RUN, conversation_id=_PER_RUN, metadata=_APP_DATA
)
_UNKNOWN_PART = _rules("", _TOOL_CALL, timestamp=_PER_RUN, metadata=_APP_DATA)
"""A message or part kind newer than these tables: every other field is kept."""

_CACHE_POINT = "cache-point"  # CachePoint markers inside a prompt's content: prompt-caching hints

# -- settings --------------------------------------------------------------------------------

TRANSPORT_SETTINGS: Final = frozenset(
    {"timeout", "request_timeout", "first_event_timeout", "max_retries", "extra_headers", "openai_transport"}
)
"""Settings that change how a request travels, never what the model answers: left out of keys."""

PROMPT_CACHE_SETTINGS: Final = frozenset(
    {
        "cache",
        "openai_prompt_cache_key",
        "openai_prompt_cache_retention",
        "openai_prompt_cache_options",
        "openai_cache_instructions",
        "openai_prompt_cache_diagnostics",
        "anthropic_cache",
        "anthropic_cache_instructions",
        "anthropic_cache_messages",
        "anthropic_cache_tool_definitions",
        "anthropic_cache_diagnostics",
        "openrouter_cache_instructions",
        "openrouter_cache_messages",
        "openrouter_cache_tool_definitions",
    }
)
"""Provider prompt-caching hints and cache diagnostics: they change the price, not the answer."""

SETTINGS_LEFT_OUT: Final[Mapping[str, str]] = {
    **dict.fromkeys(sorted(TRANSPORT_SETTINGS), _TRANSPORT),
    **dict.fromkeys(sorted(PROMPT_CACHE_SETTINGS), _PROMPT_CACHE),
}
"""Settings left out of keys, with the reason."""

SETTINGS_KEPT: Final = _names(
    # ModelSettings
    "max_tokens temperature top_p top_k framing_announcement parallel_tool_calls tool_choice seed "
    "presence_penalty frequency_penalty logit_bias stop_sequences thinking citations service_tier extra_body "
    # OpenAIChatModelSettings and OpenAIResponsesModelSettings
    "openai_reasoning_effort openai_logprobs openai_top_logprobs openai_store openai_user openai_moderation "
    "openai_text_verbosity openai_service_tier openai_prediction openai_continuous_usage_stats "
    "openai_include_raw_annotations openai_include_unmapped_response_data openai_native_tools "
    "openai_reasoning_mode openai_reasoning_context openai_reasoning_summary openai_send_reasoning_ids "
    "openai_truncation openai_previous_response_id openai_conversation_id "
    "openai_include_code_execution_outputs openai_include_web_search_sources "
    "openai_include_file_search_results openai_context_management openai_background "
    # AnthropicModelSettings
    "anthropic_metadata anthropic_thinking anthropic_service_tier anthropic_effort anthropic_task_budget "
    "anthropic_container anthropic_code_execution_tool_version anthropic_web_tools_allowed_callers "
    "anthropic_eager_input_streaming anthropic_betas anthropic_speed anthropic_context_management "
    # OpenRouterModelSettings
    "openrouter_models openrouter_provider openrouter_preset openrouter_transforms openrouter_reasoning "
    "openrouter_usage"
)
"""Settings classified as part of the answer. Any other setting not left out is kept as well."""

# -- request parameters and tool definitions -------------------------------------------------

PARAMETER_RULES: Final = _rules(
    "function_tools native_tools tool_visibility revealed_tool_names introduced_tool_names "
    "deferred_capability_ids output_mode output_object output_tools prompted_output_template "
    "allow_text_output allow_image_output instruction_parts instruction_visibility thinking",
    _telemetry_mcp_url_ids=_EXCLUDED,
    _telemetry_mcp_url_toolset_ids=_EXCLUDED,
    _telemetry_mcp_url_tool_names=_EXCLUDED,
    _framing_announcement=_EXCLUDED,
    cache=_PROMPT_CACHE,
)
"""``ModelRequestParameters``."""

TOOL_RULES: Final = _rules(
    "name parameters_json_schema description outer_typed_dict_key strict kind defer_loading unless_native "
    "with_native tool_kind unless_tool_kind return_schema include_return_schema toolset_id capability_id",
    metadata=_UNSERIALISABLE,
    timeout=_LOCAL,
    sequential=_LOCAL,
)
"""``ToolDefinition`` (function and output tools)."""

# -- fields newer than the oldest supported pydantic-ai --------------------------------------

OLDEST_PYDANTIC_AI: Final = "2.62"
"""The oldest pydantic-ai these rules are tested with (``make test-pydantic-ai-range``)."""

ADDED_FIELDS: Final[Mapping[str, Mapping[str, Any]]] = {
    "response": {"canonical_system": None, "model_id": None},
    "system-prompt": {"context_id": None},
    "speech": {"timestamps": None},
    "ModelRequestParameters": {"_framing_announcement": None},
}
"""Fields added after ``OLDEST_PYDANTIC_AI``, per message kind, part kind or class name, with the
JSON value a version that has the field dumps when the request does not use it (its default).

An older pydantic-ai cannot use such a field, so its dump lacks it: the key fills it in (unless the
rules leave it out), and one request gets the same key on every supported version. A field added
with another default, or one whose absence means something else than its default, needs a rule
of its own, not an entry here.
"""

ADDED_KINDS: Final = frozenset({"capability-load-delta"})
"""Part kinds added after ``OLDEST_PYDANTIC_AI``: an older version's history never holds them."""

ADDED_SETTINGS: Final = frozenset(
    {
        "first_event_timeout",
        "framing_announcement",
        "anthropic_web_tools_allowed_callers",
        "openai_include_unmapped_response_data",
        "openai_transport",
    }
)
"""Settings added after ``OLDEST_PYDANTIC_AI``. Nothing to fill in: a setting nobody set is absent
from the settings on every version."""


def _fills(kind: str, rules: FieldRules) -> dict[str, Any]:
    return {k: v for k, v in ADDED_FIELDS.get(kind, {}).items() if k not in rules.left_out}


_MESSAGE_FILLS = {kind: _fills(kind, rules) for kind, rules in MESSAGE_RULES.items()}
_PART_FILLS = {kind: _fills(kind, rules) for kind, rules in PART_RULES.items()}
_PARAMETER_FILLS = _fills("ModelRequestParameters", PARAMETER_RULES)
_TOOL_FILLS = _fills("ToolDefinition", TOOL_RULES)

_PARAMETER_SETS = ("revealed_tool_names", "introduced_tool_names", "deferred_capability_ids")
_TOOLS_EXCLUDE = {"__all__": set(TOOL_RULES.left_out)}
# Excluded while serialising (not after): ToolDefinition.metadata may hold what cannot be serialised.
_PARAMETERS_EXCLUDE: dict[str, Any] = {
    **{name: True for name in PARAMETER_RULES.left_out if not name.startswith("_")},
    "function_tools": _TOOLS_EXCLUDE,
    "output_tools": _TOOLS_EXCLUDE,
}
_parameters_adapter: TypeAdapter[ModelRequestParameters] | None = None


# -- the key ---------------------------------------------------------------------------------


def request_key(
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    *,
    model_id: str | None = None,
    model: Model | None = None,
) -> dict[str, Any]:
    """The key material of one model request: JSON values, identical across runs and processes.

    ``model`` is the model that serves the request (its ``model_id`` and the API it speaks go into
    the key); ``model_id`` alone keys on the id, with no API.
    """
    if model_id is None:
        if model is None:
            raise TypeError("request_key needs model= (or model_id=)")
        model_id = model.model_id
    return {
        "schema": KEY_SCHEMA,
        "model": model_id,
        "api": None if model is None else api_identity(model),
        "messages": _messages_material(messages),
        "settings": _settings_material(model_settings),
        "parameters": _parameters_material(model_request_parameters),
    }


def api_identity(model: Model) -> dict[str, Any]:
    """Which API a model speaks: the class that talks to the provider, its system, its endpoint.

    A ``FallbackModel`` speaks the APIs of its models, in order.
    """
    while isinstance(model, WrapperModel):  # instrumentation, concurrency limits...: the same API
        model = model.wrapped
    identity: dict[str, Any] = {
        "class": type(model).__name__,
        "system": model.system,
        "endpoint": endpoint(model.base_url),
    }
    if isinstance(model, FallbackModel):
        identity["models"] = [api_identity(member) for member in model.models]
    return identity


_CREDENTIAL_NAME = re.compile(r"key|token|secret|passw|auth|sig|credential|session", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint(url: str | None) -> str | None:
    """A base URL as it goes into a key: no credentials, one spelling.

    Dropped: user and password, query parameters whose name looks like a credential (``key``,
    ``api_key``, ``token``, ``sig``, ``auth``..., case-insensitive; ``api-version`` stays), the
    fragment. Normalised: scheme and host in lower case, the scheme's default port, a trailing
    ``/``, the order of query parameters. A credential inside the path cannot be told apart from
    a path and is kept.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:  # not a URL: keep what is certainly no credential
        return url.split("@")[-1].split("?")[0].split("#")[0]
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _CREDENTIAL_NAME.search(k)
    )
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), urlencode(query), ""))


def _messages_material(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    stand_ins: dict[str, dict[str, str]] = {}  # prefix -> {original id -> stand-in}
    out: list[dict[str, Any]] = []
    for message in ModelMessagesTypeAdapter.dump_python(messages, mode="json"):
        rules = MESSAGE_RULES.get(message.get("kind", ""), _UNKNOWN_MESSAGE)
        kept = {k: v for k, v in message.items() if k not in rules.left_out}
        _fill(kept, _MESSAGE_FILLS.get(message.get("kind", "")))
        if isinstance(kept.get("provider_url"), str):
            kept["provider_url"] = endpoint(kept["provider_url"])
        kept["parts"] = [_part_material(part, stand_ins) for part in message["parts"]]
        out.append(kept)
    return out


def _part_material(part: dict[str, Any], stand_ins: dict[str, dict[str, str]]) -> dict[str, Any]:
    kind = part.get("part_kind")
    rules = PART_RULES.get(kind, _UNKNOWN_PART) if isinstance(kind, str) else _UNKNOWN_PART
    kept = {k: v for k, v in part.items() if k not in rules.left_out}
    _fill(kept, _PART_FILLS.get(kind) if isinstance(kind, str) else None)
    for name, prefix in rules.renamed.items():
        value = kept.get(name)
        if isinstance(value, str):
            seen = stand_ins.setdefault(prefix, {})
            kept[name] = seen.setdefault(value, f"{prefix}{len(seen)}")
    content = kept.get("content")
    if kind == "user-prompt" and isinstance(content, list):
        kept["content"] = [c for c in content if not (isinstance(c, dict) and c.get("kind") == _CACHE_POINT)]
    return kept


def _settings_material(settings: ModelSettings | None) -> dict[str, Any]:
    if not settings:
        return {}
    return {k: _jsonable(v) for k, v in settings.items() if k not in SETTINGS_LEFT_OUT}


def _parameters_material(parameters: ModelRequestParameters) -> dict[str, Any]:
    global _parameters_adapter
    if _parameters_adapter is None:  # built on first use: importing stays cheap
        _parameters_adapter = TypeAdapter(ModelRequestParameters)
    dumped: dict[str, Any] = _parameters_adapter.dump_python(
        parameters, mode="json", exclude=_PARAMETERS_EXCLUDE
    )
    for name in _PARAMETER_SETS:
        if name in dumped:
            dumped[name] = sorted(dumped[name])
    _fill(dumped, _PARAMETER_FILLS)
    if _TOOL_FILLS:
        for tools in ("function_tools", "output_tools"):
            for tool in dumped.get(tools) or ():
                _fill(tool, _TOOL_FILLS)
    return dumped


def _fill(dumped: dict[str, Any], fills: Mapping[str, Any] | None) -> None:
    """Add the fields an older pydantic-ai lacks, as a newer one dumps them when unused."""
    if fills:
        for name, unused in fills.items():
            if name not in dumped:
                dumped[name] = deepcopy(unused)


def _jsonable(value: Any) -> Any:
    """Plain JSON values; sets become sorted lists (their iteration order depends on the hash seed)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=_sort_key)
    return to_jsonable_python(value)


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
