"""The codec: values round-trip exactly or are refused with advice that works; unreadable is told apart.

Every ``value_type`` a refusal names is taken from the message, evaluated, and used: advice in a
warning is only given when it stores the value and reads it back equal and of the same type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import re
import zlib
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import (
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    TypeAdapter,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from agentcache import UnstorableValueError, codec
from agentcache._value_advice import same_value
from agentcache.codec import CorruptValue, WrongValueType, decode, encode

# -- shapes used below -------------------------------------------------------------------------


class Summary(BaseModel):
    title: str


class Verdict(BaseModel):
    score: int


class Scored(BaseModel):
    score: float


class MaybeScored(BaseModel):
    score: float | None = None


class ScoredKeepingNaN(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")
    score: float
    spread: float | None = None


class Blob(BaseModel):
    data: bytes


class Base64Blob(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    data: bytes


class Article(Summary):
    body: str


@dataclasses.dataclass
class Point:
    x: float


@with_config(ConfigDict(ser_json_inf_nan="constants"))
@dataclasses.dataclass
class PointKeepingNaN:
    x: float


@with_config(ConfigDict(ser_json_bytes="base64", val_json_bytes="base64"))
@dataclasses.dataclass
class Base64Record:
    data: bytes


class Measure(TypedDict):
    x: float


class Colour(str, enum.Enum):
    RED = "red"


class Picky(BaseModel):
    """A model whose validator fails with a plain TypeError on input of the wrong shape."""

    title: str

    @model_validator(mode="before")
    @classmethod
    def _needs_a_mapping(cls, data: Any) -> Any:
        return {"title": data["title"]}  # a list input raises TypeError, not a ValidationError


class Unknown:
    """A class pydantic has no schema for."""


ADVICE_NAMES = {**globals(), "Any": Any}


def named_value_type(message: str) -> Any:
    """The value_type a refusal names, evaluated; fails the test when it names none."""
    match = re.search(r"pass value_type=(.+?) (?:\(built once|to get_or_call)", message)
    assert match, f"no value_type named in: {message}"
    return eval(match.group(1), ADVICE_NAMES)  # the advice, as the user would type it


def refusal(value: object, value_type: Any = None) -> str:
    with pytest.raises(UnstorableValueError) as caught:
        encode(value, value_type)
    return str(caught.value)


def round_trips(value: object, value_type: Any) -> bool:
    return same_value(decode(encode(value, value_type), value_type), value)


# -- plain JSON and bytes need no value_type -----------------------------------------------------

texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()))  # surrogates, NULs too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None)  # the first example builds pydantic adapters
@given(json_values)
def test_plain_json_values_round_trip_exactly_with_no_value_type(value: object) -> None:
    assert same_value(decode(encode(value)), value)


@settings(deadline=None)  # the first example builds pydantic adapters
@given(st.binary(max_size=600))
def test_any_bytes_round_trip_exactly_with_no_value_type(value: bytes) -> None:
    back = decode(encode(value))
    assert type(back) is bytes
    assert back == value


@settings(deadline=None)  # the first example builds pydantic adapters
@given(st.binary(max_size=600))
def test_any_bytes_round_trip_exactly_with_value_type_bytes(value: bytes) -> None:
    back = decode(encode(value, bytes), bytes)
    assert type(back) is bytes
    assert back == value


def test_bytes_that_are_not_utf8_are_stored_with_value_type_bytes() -> None:
    data = encode(b"\xff\x00\xfe", bytes)
    assert data[:1] == b"b"
    assert decode(data, bytes) == b"\xff\x00\xfe"


def test_utf8_bytes_with_value_type_bytes_keep_the_json_string_every_version_reads() -> None:
    assert encode(b"caf\xc3\xa9", bytes) == 'j"café"'.encode()


def test_an_entry_stored_as_a_json_string_for_value_type_bytes_reads_back_as_the_same_bytes() -> None:
    assert decode(b'j"caf\xc3\xa9 \\u0000"', bytes) == b"caf\xc3\xa9 \x00"


def test_bytes_without_value_type_are_stored_raw_and_compressed_when_it_pays() -> None:
    text = b"the same words again and again " * 40
    packed = encode(text)
    assert packed[:1] == b"c"
    assert len(packed) < len(text)
    assert decode(packed) == text
    noise = bytes(range(256)) * 2  # zlib cannot shrink it below itself plus a header
    assert encode(noise)[:1] in {b"b", b"c"}
    assert decode(encode(noise)) == noise


@pytest.mark.parametrize("value_type", [bytes | None, Any, object])
def test_bytes_under_a_value_type_that_keeps_them_round_trip(value_type: Any) -> None:
    assert decode(encode(b"\xff\x01", value_type), value_type) == b"\xff\x01"


def test_bytes_under_base64bytes_round_trip_through_json() -> None:
    assert decode(encode(b"aGk=", Base64Bytes), Base64Bytes) == b"aGk="


@pytest.mark.parametrize("value_type", [str, Base64Bytes, int, Summary])
def test_raw_bytes_are_never_converted_for_a_reader_of_another_type(value_type: Any) -> None:
    """A ``str`` reader would decode them, ``Base64Bytes`` would base64-decode them: both wrong."""
    with pytest.raises(WrongValueType, match="left in place"):
        decode(encode(b"aGk="), value_type)


def test_bytes_are_immutable_so_callers_may_share_them() -> None:
    assert codec.is_immutable(b"x")


# -- NaN and infinity ------------------------------------------------------------------------------

floats = st.floats()  # NaN, both infinities, -0.0 and subnormals included


@settings(deadline=None)  # the first example builds pydantic adapters
@given(floats)
def test_every_float_round_trips_with_value_type_float(value: float) -> None:
    assert round_trips(value, float)


@settings(deadline=None)  # the first example builds pydantic adapters
@given(st.lists(floats, max_size=5), st.dictionaries(st.text(max_size=3), floats, max_size=3))
def test_floats_in_containers_round_trip(items: list[float], mapping: dict[str, float]) -> None:
    assert round_trips(items, list[float])
    assert round_trips(mapping, dict[str, float])
    assert round_trips(tuple(items), tuple[float, ...])
    assert round_trips([Point(x) for x in items], list[Point])  # a dataclass inside takes the config


json_with_any_float = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | st.text(),  # no surrogates: pydantic refuses them
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None)  # the first example builds pydantic adapters
@given(json_with_any_float)
def test_json_values_with_any_float_round_trip_under_value_type_any(value: object) -> None:
    assert round_trips(value, Any)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_never_become_a_stored_null(value: float) -> None:
    assert b"null" not in encode(value, float)
    assert round_trips(value, float | None)
    assert round_trips(ScoredKeepingNaN(score=value, spread=value), ScoredKeepingNaN)
    assert round_trips(PointKeepingNaN(value), PointKeepingNaN)


def test_nan_in_a_model_that_writes_it_as_null_is_refused_with_advice_that_works() -> None:
    message = refusal(Scored(score=math.nan), Scored)
    assert "null" in message
    assert "ser_json_inf_nan='constants'" in message
    assert round_trips(ScoredKeepingNaN(score=math.nan), ScoredKeepingNaN)  # the advice, applied


def test_nan_in_an_optional_field_is_refused_not_read_back_as_none() -> None:
    message = refusal(MaybeScored(score=math.nan), MaybeScored)
    assert "read back as None" in message


def test_nan_in_a_plain_dataclass_is_refused_and_with_config_keeps_it() -> None:
    message = refusal(Point(math.inf), Point)
    assert "@pydantic.with_config(ConfigDict(ser_json_inf_nan='constants'))" in message
    assert round_trips(PointKeepingNaN(math.inf), PointKeepingNaN)


def test_nan_in_a_typeddict_is_refused_with_the_advice_to_use_a_model() -> None:
    message = refusal({"x": math.nan}, Measure)
    assert "TypedDict cannot: use a model" in message
    assert round_trips(ScoredKeepingNaN(score=math.nan), ScoredKeepingNaN)


def test_nan_under_a_typeadapter_without_the_config_is_refused_and_with_it_kept() -> None:
    plain = TypeAdapter(list[float])
    assert "in the TypeAdapter passed as value_type" in refusal([math.nan], plain)
    keeping = TypeAdapter(list[float], config=ConfigDict(ser_json_inf_nan="constants"))
    assert round_trips([math.nan], keeping)


def test_nan_decimal_is_refused_and_allow_inf_nan_keeps_it() -> None:
    message = refusal(Decimal("NaN"), Decimal)
    assert "Annotated[Decimal, Field(allow_inf_nan=True)]" in message
    lenient = Annotated[Decimal, Field(allow_inf_nan=True)]
    assert str(decode(encode(Decimal("NaN"), lenient), lenient)) == "NaN"
    assert decode(encode(Decimal("-Infinity"), lenient), lenient) == Decimal("-Infinity")


@pytest.mark.parametrize("value", [math.nan, [1.0, math.inf], {"x": {"y": -math.inf}}])
def test_nan_without_value_type_is_refused_and_the_named_value_type_keeps_it(value: object) -> None:
    message = refusal(value)
    assert "which JSON cannot hold" in message
    assert round_trips(value, named_value_type(message))


# -- refusals name a value_type that works -------------------------------------------------------

REFUSED_WITHOUT_VALUE_TYPE = [
    (1, "a"),
    (),
    {1, 2},
    frozenset({"a"}),
    {"at": datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)},
    [date(2024, 1, 1), None],
    {1: "int key"},
    {True: [1, "two"]},
    [(1, 2), (3, 4)],
    {"nested": {"deeper": (1.5, "x")}},
    {"blob": b"\xff\x00not utf-8"},
    {"blob": b"plain"},
    [b"\xff", None],
    Decimal("1.10"),
    Colour.RED,
    Summary(title="t"),
    Point(1.5),
]


@pytest.mark.parametrize("value", REFUSED_WITHOUT_VALUE_TYPE, ids=repr)
def test_a_value_json_cannot_restore_is_refused_and_the_named_value_type_restores_it(value: object) -> None:
    message = refusal(value)
    assert round_trips(value, named_value_type(message))


def test_a_nested_value_is_named_by_its_path_and_the_advice_is_for_the_whole_value() -> None:
    message = refusal({"at": [datetime(2024, 1, 1)]})
    assert "value['at'][0] is of type datetime" in message
    assert "value_type=dict[str, list[datetime]]" in message  # not value_type=datetime


@pytest.mark.parametrize(
    "value", [object(), {(1, 2): "tuple key"}, [Unknown()]], ids=["object", "tuple-key", "unknown-class"]
)
def test_when_no_value_type_would_work_none_is_named(value: object) -> None:
    message = refusal(value)
    assert "pass the value's full type as value_type=" in message
    assert not re.search(r"pass value_type=\S", message)


def test_a_value_that_contains_itself_is_refused_as_such() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert "contains itself" in refusal(loop)


def test_an_int_too_long_for_json_text_is_refused() -> None:
    assert "cannot be written as JSON" in refusal(10**5000)


def test_a_value_of_another_type_than_value_type_is_refused_and_its_own_type_named() -> None:
    message = refusal("abc", int)
    assert "does not match value_type=int" in message
    assert round_trips("abc", named_value_type(message))


@pytest.mark.parametrize(
    ("value", "value_type"),
    [(Article(title="t", body="kept"), Summary), (True, int), (Colour.RED, str)],
    ids=repr,
)
def test_a_subclass_that_would_read_back_as_its_parent_is_refused(value: object, value_type: Any) -> None:
    message = refusal(value, value_type)
    assert "subclass of value_type=" in message
    assert round_trips(value, named_value_type(message))


def test_a_value_type_pydantic_cannot_handle_is_refused_without_pydantics_advice() -> None:
    message = refusal(Unknown(), Unknown)
    assert "value_type=Unknown is not a type pydantic can write as JSON" in message
    assert "arbitrary_types_allowed" not in message  # arbitrary types cannot be written as JSON


def test_a_lone_surrogate_under_a_value_type_is_refused_and_plain_json_keeps_it() -> None:
    message = refusal({"text": "\ud800"}, dict[str, str])
    assert "pass no value_type" in message
    assert round_trips({"text": "\ud800"}, None)


def test_a_lone_surrogate_in_a_model_is_refused_and_replacing_it_stores_the_model() -> None:
    message = refusal(Summary(title="bad \udc80"), Summary)
    assert "text.encode('utf-8', 'replace').decode('utf-8')" in message
    fixed = Summary(title="bad \udc80".encode("utf-8", "replace").decode("utf-8"))
    assert round_trips(fixed, Summary)


def test_a_typed_value_nothing_stores_is_refused_without_naming_a_type() -> None:
    message = refusal(Unknown(), int)
    assert "no other value_type was found" in message
    assert not re.search(r"pass value_type=\S", message)


# -- bytes inside a value --------------------------------------------------------------------------


def test_non_utf8_bytes_in_a_model_are_refused_with_a_config_that_works() -> None:
    message = refusal(Blob(data=b"\xff\x00"), Blob)
    assert "model_config = ConfigDict(ser_json_bytes='base64', val_json_bytes='base64')" in message
    assert "new namespace" in message  # old entries hold the bytes as text
    assert round_trips(Base64Blob(data=b"\xff\x00"), Base64Blob)
    assert round_trips(Base64Record(b"\xff\x00"), Base64Record)


def test_base64bytes_is_not_the_advice_because_it_decodes_what_it_is_given() -> None:
    class Misread(BaseModel):
        data: Base64Bytes

    assert Misread(data=b"\xff\x00").data != b"\xff\x00"  # why the advice is a config instead
    assert "Base64Bytes" not in refusal(Blob(data=b"\xff\x00"), Blob)


def test_non_utf8_bytes_in_a_container_are_refused_with_a_typeadapter_that_works() -> None:
    message = refusal({"a": [b"\xff"]}, dict[str, list[bytes]])
    assert round_trips({"a": [b"\xff"]}, named_value_type(message))


def test_utf8_bytes_in_a_model_round_trip_as_before() -> None:
    assert round_trips(Blob(data=b"text"), Blob)


# -- telling corrupt bytes from another value_type --------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x07garbage",
        b"p" + b"\x80\x04K\x01.",
        b"z" + b"not a zlib stream",
        b"c" + b"not a zlib stream",
        b"j{bad json",
        b"j\xff\xfe",
        pytest.param(b"j" + b"[" * 100_000, id="nested-too-deep"),
        b"z" + zlib.compress(b"{truncated"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("value_type", [None, Summary, dict[str, int], bytes])
def test_bytes_that_are_not_a_value_are_corrupt(data: bytes, value_type: Any) -> None:
    with pytest.raises(CorruptValue):
        decode(data, value_type)


def test_a_cut_zlib_stream_is_corrupt_not_oversized() -> None:
    whole = zlib.compress(b'"' + b"a b c " * 1000 + b'"')
    with pytest.raises(CorruptValue) as raised:
        decode(b"z" + whole[:-8])
    assert not isinstance(raised.value, codec.OversizedValue)


LIMIT = 4096
AT_LIMIT = {
    "json": "x" * (LIMIT - 2),  # its JSON text is LIMIT bytes; stored compressed: z
    "short json": "x" * 10,  # j
    "bytes": b"\x00" * LIMIT,  # c
    "random bytes": bytes(range(256)) * (LIMIT // 256),  # b: zlib cannot shrink it
}


@pytest.mark.parametrize("name", AT_LIMIT)
def test_values_up_to_the_limit_round_trip_and_one_byte_more_is_refused(name: str) -> None:
    value = AT_LIMIT[name]
    limit = LIMIT if name != "short json" else 12  # the JSON text is 12 bytes
    stored = encode(value, max_bytes=limit)
    assert decode(stored, max_bytes=limit) == value
    with pytest.raises(codec.OversizedValue, match=f"larger than max_value_bytes={limit - 1}"):
        decode(stored, max_bytes=limit - 1)
    with pytest.raises(UnstorableValueError, match=f"more than max_value_bytes={limit - 1}"):
        encode(value, max_bytes=limit - 1)


def test_a_typed_value_over_the_limit_is_refused() -> None:
    with pytest.raises(UnstorableValueError, match="max_value_bytes=100"):
        encode(Summary(title="x" * 200, words=1), Summary, max_bytes=100)


def test_inflating_stops_at_the_limit() -> None:
    import tracemalloc

    stream = zlib.compress(b"a" * (64 * 1024 * 1024), 9)  # 64 KiB that inflate to 64 MiB
    tracemalloc.start()
    try:
        with pytest.raises(codec.OversizedValue):
            decode(b"c" + stream, max_bytes=1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_the_default_limit_holds_any_llm_answer() -> None:
    assert codec.MAX_VALUE_BYTES == 64 * 1024 * 1024
    assert issubclass(codec.OversizedValue, CorruptValue)


def test_wrong_value_type_is_not_a_kind_of_corrupt_value() -> None:
    assert not issubclass(WrongValueType, CorruptValue)
    assert not issubclass(CorruptValue, WrongValueType)


@pytest.mark.parametrize(
    ("value", "written_as", "read_as"),
    [
        (Summary(title="t"), Summary, Verdict),
        ({"title": "t"}, None, list[int]),
        ([1, 2], None, Summary),
        ("not a number", None, int),
        ({"a": "not json inside"}, None, dict[str, Json[int]]),  # a nested json_invalid error
        ([1], None, Picky),  # the validator raises TypeError, not ValidationError
        ("\ud800", None, str),  # a lone surrogate: JSON to us, not valid UTF-8 to pydantic
        (math.nan, float, Verdict),
        ({"title": "t"}, None, Unknown),  # a value_type pydantic cannot build
    ],
    ids=repr,
)
def test_a_well_formed_value_of_another_type_is_wrong_value_type_not_corrupt(
    value: object, written_as: Any, read_as: Any
) -> None:
    with pytest.raises(WrongValueType, match="left in place") as caught:
        decode(encode(value, written_as), read_as)
    assert caught.value.value_type is read_as


def test_wrong_value_type_names_the_value_type() -> None:
    with pytest.raises(WrongValueType, match=r"value_type=Verdict \(it was left in place"):
        decode(encode(Summary(title="t"), Summary), Verdict)


readers = st.sampled_from([int, str, bool, float, list[int], dict[str, int], Summary, Verdict, bytes])


@settings(deadline=None)  # the first example builds pydantic adapters
@given(json_values, readers)
def test_no_reader_ever_calls_a_stored_json_value_corrupt(value: object, read_as: Any) -> None:
    with contextlib.suppress(WrongValueType):
        decode(encode(value), read_as)


@settings(deadline=None)  # the first example builds pydantic adapters
@given(st.binary(max_size=40), st.sampled_from([b"j", b"z", b"b", b"c", b""]), readers | st.none())
def test_arbitrary_bytes_decode_or_raise_one_of_the_two_errors(
    payload: bytes, fmt: bytes, read_as: Any
) -> None:
    with contextlib.suppress(CorruptValue, WrongValueType):
        decode(fmt + payload, read_as)
