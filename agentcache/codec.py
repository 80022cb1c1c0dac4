"""Values <-> stored bytes: JSON by default, a pydantic ``TypeAdapter`` for typed values, zlib when it pays.

An encoded value is one format byte followed by the payload:

- ``j``: UTF-8 JSON;  ``z``: zlib-compressed UTF-8 JSON.

Plain JSON values (dict with str keys, list, str, int, float, bool, None) round-trip exactly with no
hints. Everything else (pydantic models, dataclasses, tuples, datetimes...) needs ``value_type`` so
that a hit returns the same type as the miss did; without it ``encode`` raises ``UnstorableValueError``
rather than store something that would come back as a different type. There is no pickle: a shared
store must never be a code-execution path.
"""

from __future__ import annotations

import json
import math
import zlib
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .errors import UnstorableValueError

__all__ = ["COMPRESS_MIN_BYTES", "IMMUTABLE", "CorruptValue", "decode", "encode", "is_immutable"]

COMPRESS_MIN_BYTES = 256
"""Payloads shorter than this are never worth a zlib header and a decompress on every hit."""

_JSON = b"j"
_ZLIB = b"z"


class CorruptValue(Exception):
    """Stored bytes that cannot be decoded (truncated, foreign, or of an unknown format)."""


def _adapter(value_type: Any) -> TypeAdapter[Any]:
    if isinstance(value_type, TypeAdapter):
        return value_type
    try:
        return _adapter_for_type(value_type)
    except TypeError:  # an unhashable type expression: build it uncached
        return TypeAdapter(value_type)


@lru_cache(maxsize=256)
def _adapter_for_type(value_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(value_type)


def encode(value: object, value_type: Any = None) -> bytes:
    """Encode ``value``; raise ``UnstorableValueError`` if it would not come back equal and same-typed."""
    if value_type is None:
        try:
            _check_plain_json(value, "value")
            payload = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (ValueError, RecursionError) as exc:  # a circular reference, absurd nesting
            raise UnstorableValueError(f"value cannot be written as JSON: {exc}") from exc
        raw = payload.encode("utf-8", "surrogatepass")
    else:
        try:
            raw = _adapter(value_type).dump_json(value)
        except Exception as exc:  # pydantic raises several kinds; all mean "cannot store"
            raise UnstorableValueError(
                f"value of type {type(value).__qualname__} cannot be serialised as "
                f"value_type={value_type!r}: {exc}"
            ) from exc
    if len(raw) >= COMPRESS_MIN_BYTES:
        packed = zlib.compress(raw, 6)
        if len(packed) < len(raw):
            return _ZLIB + packed
    return _JSON + raw


def decode(data: bytes, value_type: Any = None) -> Any:
    """Decode bytes written by ``encode``; raise ``CorruptValue`` if they cannot be read."""
    fmt, payload = data[:1], data[1:]
    try:
        if fmt == _ZLIB:
            payload = zlib.decompress(payload)
        elif fmt != _JSON:
            raise CorruptValue(f"unknown value format byte {fmt!r}")
        if value_type is None:
            return json.loads(payload.decode("utf-8", "surrogatepass"))
        return _adapter(value_type).validate_json(payload)
    except (zlib.error, UnicodeDecodeError, ValueError, ValidationError) as exc:
        raise CorruptValue(f"stored value cannot be decoded: {exc}") from exc


IMMUTABLE = (str, int, float, bool, type(None), bytes)
"""Types whose values callers may share instead of each decoding a private copy."""


def is_immutable(value: object) -> bool:
    """True when callers may share ``value`` instead of each decoding a private copy."""
    return isinstance(value, IMMUTABLE)


def _check_plain_json(value: object, path: str) -> None:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise UnstorableValueError(f"{path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, list) and kind is list:
        for i, item in enumerate(value):
            _check_plain_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict) and kind is dict:
        for name, item in value.items():
            if type(name) is not str:
                raise UnstorableValueError(
                    f"{path} has a key of type {type(name).__qualname__}; JSON keys are str. "
                    "Pass value_type= (e.g. dict[int, str]) so it can be restored exactly"
                )
            _check_plain_json(item, f"{path}[{name!r}]")
        return
    raise UnstorableValueError(
        f"{path} is of type {kind.__qualname__}, which does not round-trip through JSON "
        f"unchanged; pass value_type={kind.__qualname__} (or any type pydantic can validate) "
        "to get_or_call/get, or annotate the return type of a @cache.cached function"
    )
