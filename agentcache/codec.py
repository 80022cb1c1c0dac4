"""Values <-> stored bytes: JSON by default, a pydantic ``TypeAdapter`` for typed values, zlib when it pays.

An encoded value is one format byte followed by the payload:

- ``j``: UTF-8 JSON;  ``z``: zlib-compressed UTF-8 JSON;
- ``b``: raw bytes;   ``c``: zlib-compressed raw bytes.

Plain JSON values (dict with str keys, list, str, int, float, bool, None) and ``bytes`` round-trip
exactly with no hints. Everything else (pydantic models, dataclasses, tuples, datetimes...) needs
``value_type`` so that a hit returns the same type as the miss did; without it ``encode`` raises
``UnstorableValueError`` rather than store something that would come back as a different type.
The error names a ``value_type`` only after checking that it restores the value. There is no
pickle: a shared store must never be a code-execution path.

Bytes: without ``value_type`` a ``bytes`` value is stored raw. With ``value_type=bytes`` (or any
type that accepts the bytes unchanged) it is written as pydantic writes it, a JSON string, which
every version of agentcache reads; only bytes that are not UTF-8, which JSON cannot hold, are
stored raw. ``value_type=bytes`` is therefore still the right hint where entries were written by
versions that needed it: it reads their JSON strings back as the same bytes, where no hint reads
them as ``str``.

NaN and infinity: plain JSON (no ``value_type``) cannot hold them and refuses them. Typed values
keep them: the codec asks pydantic to write them as ``NaN``/``Infinity``, which it reads back.
A model or dataclass has its own pydantic config, which may write them as ``null``; a value that
would read back changed or not at all is refused at encode time instead, with the setting to use.

Size: no value larger than ``max_value_bytes`` (default ``MAX_VALUE_BYTES``, 64 MiB, measured
before compression) is written or read. A shared store (Redis) is writable by others, and a 1 MB
zlib stream can inflate to a gigabyte: reading inflates at most ``max_value_bytes`` (plus one byte,
to tell) before giving up, so such an entry costs that much memory and time, never the whole thing.

Reading: ``CorruptValue`` means the bytes are not a value any version wrote (an unknown format
byte, a broken zlib stream, text that is not JSON): callers delete the entry. Its subclass
``OversizedValue`` means the value is larger than the reader's ``max_value_bytes``: a miss that
callers leave in place, since a cache with a larger limit may have written it. ``WrongValueType``
means the bytes are a well-formed value that does not validate as the caller's ``value_type``:
another version of the application may have written it, so callers leave it in place.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import _value_advice
from .errors import UnstorableValueError

if TYPE_CHECKING:  # pydantic is imported on first use: ``import agentcache`` stays light
    from pydantic import TypeAdapter

__all__ = [
    "COMPRESS_MIN_BYTES",
    "IMMUTABLE",
    "MAX_VALUE_BYTES",
    "CorruptValue",
    "OversizedValue",
    "WrongValueType",
    "decode",
    "encode",
    "is_immutable",
]

COMPRESS_MIN_BYTES = 256
"""Payloads shorter than this are never worth a zlib header and a decompress on every hit."""

MAX_VALUE_BYTES = 64 * 1024 * 1024
"""The default ``max_value_bytes``: the largest value (JSON text or raw bytes, before compression)
a cache writes or reads. Far above any LLM answer; far below what a crafted zlib stream can inflate to."""

_JSON = b"j"
_ZLIB = b"z"
_BYTES = b"b"
_ZLIB_BYTES = b"c"


class CorruptValue(Exception):
    """Stored bytes that are not a value agentcache wrote (unknown format, broken zlib, not JSON)."""


class OversizedValue(CorruptValue):
    """Stored bytes holding a value larger than the reader's ``max_value_bytes``; never inflated past it.

    A kind of ``CorruptValue`` for this reader (it cannot use the entry), but not to be deleted:
    a cache configured with a larger ``max_value_bytes`` may have written it.
    """


class WrongValueType(Exception):
    """A well-formed stored value that does not validate as the caller's ``value_type``.

    Not a kind of ``CorruptValue``: the entry is somebody's good answer (another version of the
    application, with another ``value_type``), so it must be neither deleted nor overwritten.
    """

    def __init__(self, message: str, value_type: Any) -> None:
        super().__init__(message)
        self.value_type = value_type


class _Refused(Exception):
    """Why a value cannot be stored; ``encode`` adds the advice (``hint``, else a checked suggestion)."""

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


# -- encoding ---------------------------------------------------------------------------------


def encode(value: object, value_type: Any = None, *, max_bytes: int = MAX_VALUE_BYTES) -> bytes:
    """Encode ``value``; raise ``UnstorableValueError`` if it would not come back equal and same-typed.

    A value larger than ``max_bytes`` (before compression) is refused too: no reader with that
    limit would read it back.
    """
    try:
        if value_type is not None:
            return _encode_typed(value, value_type, max_bytes)
        if type(value) is bytes:
            return _pack(value, _BYTES, _ZLIB_BYTES, max_bytes)
        # The usual case, inlined: a plain JSON value, most often a str.
        _check_plain_json(value, "value")
        raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
            "utf-8", "surrogatepass"
        )
    except _Refused as refusal:
        advice = refusal.hint or _value_advice.for_value(value, value_type, _restores)
        raise UnstorableValueError(f"{refusal.problem}; {advice}") from refusal.__cause__
    except RecursionError as exc:
        raise UnstorableValueError(
            "value is nested too deeply to be written as JSON (or it contains itself)"
        ) from exc
    except ValueError as exc:  # an int too long to write as text
        raise UnstorableValueError(f"value cannot be written as JSON: {exc}") from exc
    if len(raw) >= COMPRESS_MIN_BYTES or len(raw) > max_bytes:
        return _pack(raw, _JSON, _ZLIB, max_bytes)
    return _JSON + raw


def _pack(raw: bytes, plain: bytes, compressed: bytes, max_bytes: int) -> bytes:
    if len(raw) > max_bytes:
        raise UnstorableValueError(
            f"value is {len(raw)} bytes as stored, more than max_value_bytes={max_bytes}; pass a "
            "larger AgentCache(max_value_bytes=...) to every cache that writes or reads it"
        )
    if len(raw) >= COMPRESS_MIN_BYTES:
        packed = zlib.compress(raw, 6)
        if len(packed) < len(raw):
            return compressed + packed
    return plain + raw


def _check_plain_json(value: object, path: str) -> None:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return
    if isinstance(value, float) and kind is float:
        if not math.isfinite(value):
            raise _Refused(f"{path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, list) and kind is list:
        for i, item in enumerate(value):
            _check_plain_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict) and kind is dict:
        for name, item in value.items():
            if type(name) is not str:
                raise _Refused(
                    f"{path} has a key of type {type(name).__qualname__}; JSON object keys are str"
                )
            _check_plain_json(item, f"{path}[{name!r}]")
        return
    raise _Refused(f"{path} is of type {kind.__qualname__}, which plain JSON does not restore unchanged")


def _encode_typed(value: object, value_type: Any, max_bytes: int = MAX_VALUE_BYTES) -> bytes:
    adapter = _adapter(value_type)
    if type(value) is not value_type and _reads_back_as_base(value, value_type):
        raise _Refused(
            f"value is of type {type(value).__qualname__}, a subclass of value_type="
            f"{_value_advice.render(value_type)}: it would read back as the latter"
        )
    try:
        raw: bytes = adapter.dump_json(value, warnings="error")
    except Exception as exc:  # pydantic raises several kinds; all mean "cannot store"
        if type(value) is bytes and _keeps_bytes(adapter, value, value_type):
            return _pack(value, _BYTES, _ZLIB_BYTES, max_bytes)  # bytes JSON text cannot hold: raw
        raise _unserialisable(value, value_type, exc) from exc
    # NaN and infinity leave no trace but as null, NaN or Infinity: only then is a check needed.
    if (b"null" in raw or b"NaN" in raw or b"Infinity" in raw) and _holds_non_finite(adapter, value):
        _check_non_finite_round_trip(adapter, value, value_type, raw)
    return _pack(raw, _JSON, _ZLIB, max_bytes)


_CONCRETE = frozenset({str, int, float, bytes, list, dict, tuple, set, frozenset})


def _reads_back_as_base(value: object, value_type: Any) -> bool:
    """True when ``value`` is a proper subclass instance of a ``value_type`` pydantic rebuilds as itself.

    A subclass of a model or dataclass reads back as the parent without the subclass's fields; a
    ``bool`` under ``int`` or a str enum under ``str`` reads back as the plain parent type.
    """
    try:
        if not isinstance(value_type, type) or not isinstance(value, value_type):
            return False
    except TypeError:  # typing.Any is a class that refuses isinstance()
        return False
    if value_type in _CONCRETE or dataclasses.is_dataclass(value_type):
        return True
    from pydantic import BaseModel

    return issubclass(value_type, BaseModel)


def _keeps_bytes(adapter: TypeAdapter[Any], value: bytes, value_type: Any) -> bool:
    """True when ``value_type`` accepts ``value`` as the very same bytes (so raw storage restores it)."""
    if value_type is bytes:
        return True
    try:
        kept = adapter.validate_python(value)
    except Exception:
        return False
    return type(kept) is bytes and kept == value


def _unserialisable(value: object, value_type: Any, exc: Exception) -> _Refused:
    shown = _value_advice.render(value_type)
    if "invalid utf-8" in str(exc):
        return _Refused(
            f"value holds bytes that are not UTF-8, which pydantic writes into JSON as UTF-8 text "
            f"(value_type={shown})",
            _value_advice.base64_bytes(value, value_type, _restores),
        )
    if "surrogates not allowed" in str(exc):
        return _Refused(
            "value holds a str with a lone surrogate (not valid Unicode), which pydantic cannot "
            f"write (value_type={shown})",
            _value_advice.lone_surrogates(plain_json_keeps_it=_plain_json_restores(value)),
        )
    if "PydanticSerializationUnexpectedValue" in str(exc):
        return _Refused(f"value of type {type(value).__qualname__} does not match value_type={shown}")
    return _Refused(
        f"value of type {type(value).__qualname__} cannot be written as value_type={shown}: {exc}"
    )


def _plain_json_restores(value: object) -> bool:
    """True when ``value`` is plain JSON that the no-``value_type`` path restores exactly."""
    try:
        _check_plain_json(value, "value")
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        return _value_advice.same_value(json.loads(text), value)
    except Exception:
        return False


def _holds_non_finite(adapter: TypeAdapter[Any], value: object) -> bool:
    """True when NaN or an infinity (float or Decimal) occurs anywhere in ``value``'s fields."""
    try:
        return _non_finite_in(adapter.dump_python(value, warnings=False))
    except Exception:  # cannot tell (a failing serializer, absurd nesting): the round trip decides
        return True


def _non_finite_in(obj: object) -> bool:
    """True when a non-finite float or Decimal occurs in ``obj``, the Python form of a value."""
    kind = type(obj)
    if kind is str or kind is int or obj is None or kind is bool:  # the usual leaves, first
        return False
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_non_finite_in(item) for item in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_non_finite_in(item) for item in obj)
    if isinstance(obj, Decimal):
        return not obj.is_finite()
    return False


def _check_non_finite_round_trip(
    adapter: TypeAdapter[Any], value: object, value_type: Any, raw: bytes
) -> None:
    """Refuse a value holding NaN or infinity unless it reads back from ``raw`` unchanged."""
    try:
        back = adapter.validate_json(raw)
        same = repr(adapter.dump_python(back, warnings=False)) == repr(
            adapter.dump_python(value, warnings=False)
        )
        cause: Exception | None = None
    except Exception as exc:
        same, cause = False, exc
    if same:
        return
    shown = _value_advice.render(value_type)
    if b"NaN" not in raw and b"Infinity" not in raw:  # pydantic wrote them as null
        raise _Refused(
            f"value holds NaN or infinity, which pydantic writes as JSON null for value_type={shown}, "
            "so it would read back as None or not at all",
            _value_advice.NON_FINITE_AS_CONSTANTS,
        ) from cause
    detail = f": {_first_line(cause)}" if cause is not None else ""
    raise _Refused(
        f"value holds NaN or infinity, which would not read back as value_type={shown}{detail}",
        _value_advice.ALLOW_INF_NAN,
    ) from cause


def _restores(value: object, value_type: Any) -> bool:
    """True when ``value`` stored under ``value_type`` reads back equal and of the same type."""
    try:
        back = decode(_encode_typed(value, value_type), value_type)
    except (_Refused, UnstorableValueError, CorruptValue, WrongValueType):
        return False
    return _value_advice.same_value(value, back)


# -- decoding ---------------------------------------------------------------------------------


def decode(data: bytes, value_type: Any = None, *, max_bytes: int = MAX_VALUE_BYTES) -> Any:
    """Decode bytes written by ``encode``.

    Raises ``CorruptValue`` for bytes that are not a value (delete them), ``OversizedValue`` for
    a value larger than ``max_bytes`` (inflated no further; leave it in place) and
    ``WrongValueType`` for a well-formed value that does not validate as ``value_type`` (leave it).
    """
    fmt, payload = data[:1], data[1:]
    if fmt == _JSON:
        if len(payload) > max_bytes:
            raise _oversized(max_bytes)
    elif fmt == _ZLIB:
        payload = _inflate(payload, max_bytes)
    elif fmt == _BYTES:
        if len(payload) > max_bytes:
            raise _oversized(max_bytes)
        return _bytes_as(payload, value_type)
    elif fmt == _ZLIB_BYTES:
        return _bytes_as(_inflate(payload, max_bytes), value_type)
    else:
        raise CorruptValue(f"unknown value format byte {fmt!r}")
    if value_type is None:
        try:
            return json.loads(payload.decode("utf-8", "surrogatepass"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CorruptValue(f"stored value is not JSON: {exc}") from exc
    adapter = _reading_adapter(value_type)
    try:
        return adapter.validate_json(payload)
    except Exception as exc:  # ValidationError, or anything a user's validator raised
        if not _is_json(payload):
            raise CorruptValue(f"stored value is not JSON: {_first_line(exc)}") from exc
        raise _wrong_type(value_type, exc) from exc


def _inflate(payload: bytes, max_bytes: int) -> bytes:
    """The inflated payload, if it is at most ``max_bytes``: one byte more and inflating stops there."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise CorruptValue(f"stored value is not a zlib stream: {exc}") from exc
    if len(raw) > max_bytes:
        raise _oversized(max_bytes)
    if not inflater.eof:
        raise CorruptValue("stored value is not a zlib stream: incomplete or truncated stream")
    return raw


def _oversized(max_bytes: int) -> OversizedValue:
    return OversizedValue(
        f"stored value is larger than max_value_bytes={max_bytes} (a cache with a larger "
        "max_value_bytes wrote it, or it was crafted to inflate without end); it was not read"
    )


def _bytes_as(payload: bytes, value_type: Any) -> Any:
    """Raw stored bytes, for a caller that accepts exactly these bytes (never a conversion of them)."""
    if value_type is None or value_type is bytes:
        return payload
    adapter = _reading_adapter(value_type)
    try:
        kept = adapter.validate_python(payload)
    except Exception as exc:
        raise _wrong_type(value_type, exc) from exc
    if type(kept) is not bytes or kept != payload:  # e.g. str, or Base64Bytes decoding them
        raise _wrong_type(value_type, f"the stored bytes would read back as a {type(kept).__qualname__}")
    return kept


def _is_json(payload: bytes) -> bool:
    """True when ``payload`` is JSON as some version of agentcache writes it (NaN, lone surrogates)."""
    try:
        json.loads(payload.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


def _wrong_type(value_type: Any, why: object) -> WrongValueType:
    reason = _first_line(why) if isinstance(why, BaseException) else str(why)
    return WrongValueType(
        f"stored value does not validate as value_type={_value_advice.render(value_type)} (it was "
        f"left in place: another value_type may have written it): {reason}",
        value_type,
    )


def _first_line(exc: BaseException) -> str:
    """An exception in one line; for pydantic's ValidationError, its first error and where it is."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.error_count():
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        more = exc.error_count() - 1
        return f"{where + ': ' if where else ''}{first['msg']}" + (f" (and {more} more)" if more else "")
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


# -- adapters ---------------------------------------------------------------------------------


def _adapter(value_type: Any) -> TypeAdapter[Any]:
    """The ``TypeAdapter`` for ``value_type``; a refusal when pydantic cannot build one."""
    try:
        return _adapter_of(value_type)
    except Exception as exc:
        from pydantic import PydanticSchemaGenerationError

        shown = _value_advice.render(value_type)
        if isinstance(exc, PydanticSchemaGenerationError):  # its advice (arbitrary types) makes no JSON
            problem = f"value_type={shown} is not a type pydantic can write as JSON and read back"
        else:
            problem = f"value_type={shown} is not a type pydantic can write and read: {_first_line(exc)}"
        raise _Refused(problem) from exc


def _reading_adapter(value_type: Any) -> TypeAdapter[Any]:
    try:
        return _adapter_of(value_type)
    except Exception as exc:
        raise _wrong_type(value_type, exc) from exc


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_MAX_ADAPTERS = 256  # value types are few; a program minting them without end gets a fresh table


def _adapter_of(value_type: Any) -> TypeAdapter[Any]:
    try:
        return _ADAPTERS[value_type]
    except KeyError:
        pass
    except TypeError:  # an unhashable type expression: build it uncached
        return _build_adapter(value_type)
    from pydantic import TypeAdapter

    if isinstance(value_type, TypeAdapter):
        return value_type
    adapter = _build_adapter(value_type)
    if len(_ADAPTERS) >= _MAX_ADAPTERS:
        _ADAPTERS.clear()
    _ADAPTERS[value_type] = adapter
    return adapter


def _build_adapter(value_type: Any) -> TypeAdapter[Any]:
    """An adapter that writes NaN and infinity as JSON constants, which pydantic reads back.

    pydantic's default writes them as ``null``, which then fails to read (or reads as ``None``).
    Models, dataclasses and TypedDicts refuse an adapter config: their own config decides, and
    ``_check_non_finite_round_trip`` refuses a value it would change.
    """
    from pydantic import ConfigDict, PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(value_type, config=ConfigDict(ser_json_inf_nan="constants"))
    except PydanticUserError as exc:
        if exc.code != "type-adapter-config-unused":
            raise
    return TypeAdapter(value_type)


# -- sharing ----------------------------------------------------------------------------------

IMMUTABLE = (str, int, float, bool, type(None), bytes)
"""Types whose values callers may share instead of each decoding a private copy."""


def is_immutable(value: object) -> bool:
    """True when callers may share ``value`` instead of each decoding a private copy."""
    return isinstance(value, IMMUTABLE)
