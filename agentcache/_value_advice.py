"""What to tell a user whose value the codec refused: a ``value_type`` checked to work, or the fix.

Only the codec's error path runs this. ``for_value`` derives candidate types from the value itself
(``(1, "a")`` -> ``tuple[int, str]``, ``{"at": datetime}`` -> ``dict[str, datetime]``), asks the codec
whether each one restores the value exactly, and names the first that does as the user would
write it; when none does, it names none and says what kind of type would. The fixed advice for
bytes that are not UTF-8, NaN, and lone surrogates lives here too; tests/test_codec.py applies
every piece of it and checks that it works.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable, Iterable
from functools import reduce
from operator import or_
from typing import Any, get_args, get_origin

__all__ = [
    "ALLOW_INF_NAN",
    "BASE64_BYTES_CONFIG",
    "NON_FINITE_AS_CONSTANTS",
    "Restores",
    "base64_bytes",
    "for_value",
    "lone_surrogates",
    "render",
    "same_value",
    "suggest",
]

Restores = Callable[[object, Any], bool]
"""The codec's check: does this value, stored under this ``value_type``, read back the same?"""

BASE64_BYTES_CONFIG = "ConfigDict(ser_json_bytes='base64', val_json_bytes='base64')"
"""The pydantic config, as written in code, that stores bytes as base64 instead of UTF-8 text."""

NON_FINITE_AS_CONSTANTS = (
    "set ser_json_inf_nan='constants' in the pydantic config of the model or dataclass that "
    "holds the number (model_config = ConfigDict(ser_json_inf_nan='constants'), or "
    "@pydantic.with_config(ConfigDict(ser_json_inf_nan='constants')) on a dataclass; a "
    "TypedDict cannot: use a model), or in the TypeAdapter passed as value_type"
)
"""The fix for NaN or infinity that a model's config writes as ``null``."""

ALLOW_INF_NAN = (
    "declare such numbers with Field(allow_inf_nan=True), e.g. "
    "Annotated[Decimal, Field(allow_inf_nan=True)], so that pydantic reads them back"
)
"""The fix for NaN or infinity that is written but refused on reading (Decimal's default)."""

_STALE_TEXT = (
    " (entries stored before that change hold text where base64 is now expected, which it would "
    "misread: store the changed type under a new namespace)"
)
_MAX_UNION = 4  # a union wider than this is no longer advice anyone would follow


def for_value(value: object, value_type: Any, restores: Restores) -> str:
    """The advice for a refused value: a checked ``value_type``, else what kind of type would do."""
    found = suggest(value, restores)
    if found is not None and found != render(value_type):
        if found.startswith("TypeAdapter("):
            return f"pass value_type={found} (built once and reused) to get_or_call/get/set" + _STALE_TEXT
        return (
            f"pass value_type={found} to get_or_call/get/set, or annotate a @cache.cached "
            "function's return type with it"
        )
    if value_type is not None:
        return (
            "no other value_type was found that stores it: return a value that pydantic writes "
            "as JSON and reads back unchanged"
        )
    return (
        "pass the value's full type as value_type= (a type pydantic writes as JSON and reads "
        "back: a BaseModel, a dataclass, standard types such as tuple[int, str] or "
        "dict[str, datetime]), or return such a value"
    )


def base64_bytes(value: object, value_type: Any, restores: Restores) -> str:
    """The fix for bytes that are not UTF-8 inside ``value_type``: base64 in the right config."""
    from pydantic import ConfigDict, TypeAdapter

    try:
        adapter = TypeAdapter(value_type, config=ConfigDict(ser_json_bytes="base64", val_json_bytes="base64"))
    except Exception:  # a model, dataclass or TypedDict: only its own config can say so
        adapter = None
    if adapter is not None and restores(value, adapter):
        return (
            f"pass value_type=TypeAdapter({render(value_type)}, config={BASE64_BYTES_CONFIG}) "
            "(built once and reused)" + _STALE_TEXT
        )
    return (
        "set ser_json_bytes='base64' and val_json_bytes='base64' in the pydantic config of the "
        f"model or dataclass holding them (model_config = {BASE64_BYTES_CONFIG}, or "
        f"@pydantic.with_config({BASE64_BYTES_CONFIG}) on a dataclass)" + _STALE_TEXT
    )


def lone_surrogates(*, plain_json_keeps_it: bool) -> str:
    """The fix for a str pydantic cannot write: no value_type where plain JSON holds the value."""
    if plain_json_keeps_it:
        return (
            "pass no value_type (a @cache.cached function: annotate its return type as Any): "
            "plain JSON keeps such strings exactly"
        )
    return (
        "replace the lone surrogates before returning the value, e.g. "
        "text.encode('utf-8', 'replace').decode('utf-8')"
    )


def suggest(value: object, restores: Restores) -> str | None:
    """A ``value_type`` expression that ``restores(value, it)`` confirms, or ``None``."""
    for candidate, text in _candidates(value):
        try:
            if restores(value, candidate):
                return text
        except Exception:  # a candidate pydantic cannot even build is simply not advice
            continue
    return None


def _candidates(value: object) -> Iterable[tuple[Any, str]]:
    try:
        found = _type_of(value)
    except RecursionError:
        return
    if found is None:
        return
    tp, holds_bytes = found
    plain = (tp, render(tp))
    if not holds_bytes or type(value) is bytes:
        yield plain
        return
    # Bytes inside a container: UTF-8 text only holds some bytes, base64 holds them all.
    from pydantic import ConfigDict, TypeAdapter

    try:
        adapter = TypeAdapter(tp, config=ConfigDict(ser_json_bytes="base64", val_json_bytes="base64"))
    except Exception:  # a model or dataclass: its own config decides, see the codec's advice
        yield plain
        return
    yield adapter, f"TypeAdapter({render(tp)}, config={BASE64_BYTES_CONFIG})"
    yield plain


def _type_of(value: object) -> tuple[Any, bool] | None:
    """The type expression describing ``value`` and whether bytes occur in it (None: no union fits)."""
    kind = type(value)
    if isinstance(value, (list, set, frozenset)) and kind in (list, set, frozenset):
        items = _union_of(value)
        if items is None:
            return None
        member, holds_bytes = items
        return (kind if member is None else types.GenericAlias(kind, (member,))), holds_bytes
    if isinstance(value, tuple) and kind is tuple:
        parts = [_type_of(item) for item in value]
        known = [part for part in parts if part is not None]
        if len(known) < len(parts):
            return None
        return types.GenericAlias(tuple, tuple(t for t, _ in known)), any(b for _, b in known)
    if isinstance(value, dict) and kind is dict:
        keys = _union_of(value)
        values = _union_of(value.values())
        if keys is None or values is None:
            return None
        if keys[0] is None:
            return dict, False
        return types.GenericAlias(dict, (keys[0], values[0])), keys[1] or values[1]
    return kind, kind is bytes


def _union_of(items: Iterable[object]) -> tuple[Any, bool] | None:
    """The union of the items' types (``None`` inside when there are no items), and bytes-or-not."""
    members: list[Any] = []
    holds_bytes = False
    for item in items:
        found = _type_of(item)
        if found is None:
            return None
        if found[0] not in members:
            members.append(found[0])
            if len(members) > _MAX_UNION:
                return None
        holds_bytes = holds_bytes or found[1]
    if not members:
        return None, False
    return reduce(or_, members), holds_bytes


def render(tp: Any) -> str:
    """A type expression as the user would write it: ``dict[str, datetime]``, ``int | None``."""
    if tp is type(None):
        return "None"
    if isinstance(tp, types.UnionType):
        return " | ".join(render(arg) for arg in get_args(tp))
    origin = get_origin(tp)
    if origin is not None:
        args = get_args(tp)
        if origin is tuple and not args:
            return "tuple[()]"
        return f"{render(origin)}[{', '.join(render(arg) for arg in args)}]"
    if isinstance(tp, type):
        return tp.__name__ if "<locals>" in tp.__qualname__ else tp.__qualname__
    return repr(tp)


def same_value(a: object, b: object) -> bool:
    """Equal and of the same type all the way down; NaN counts as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        if {(type(k), k) for k in a} != {(type(k), k) for k in b}:
            return False
        return all(same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, (set, frozenset)) and isinstance(b, (set, frozenset)):
        return {(type(x), x) for x in a} == {(type(x), x) for x in b}
    fields = getattr(type(a), "__pydantic_fields__", None)  # a model or pydantic dataclass
    if fields is not None:
        return all(same_value(getattr(a, name), getattr(b, name)) for name in fields)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return all(same_value(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b
