"""Bad input of every kind: a clear error or a correct result; no crash, nothing stored corrupted.

Errors about the caller's input are raised before ``call_fn`` runs (nothing is paid for) and are
``AgentCacheError``s; a value that cannot be stored is still returned, with a warning.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import decimal
import math
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentcache import AgentCache, AgentCacheError, AgentCacheWarning, ConfigurationError, codec
from agentcache.errors import KeyMaterialError, NotACacheFileError
from tests.helpers import Upstream


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, db_url: str) -> str:
    return "memory://" if request.param == "memory" else db_url


def circular_list() -> list[Any]:
    a: list[Any] = []
    a.append(a)
    return a


def deep_list(depth: int) -> list[Any]:
    key: list[Any] = []
    for _ in range(depth):
        key = [key]
    return key


@dataclasses.dataclass
class Opaque:
    handle: object


UNSUPPORTED_KEYS: list[tuple[object, str]] = [
    ({1, 2}, r"key is of unsupported type set \(convert it to a sorted list\)"),
    (frozenset({"a"}), "frozenset"),
    (object(), "object"),
    (lambda: None, "function"),
    (complex(1, 2), "complex"),
    (decimal.Decimal("1.5"), "Decimal"),
    (datetime.datetime(2026, 1, 1), "datetime"),
    (uuid.UUID(int=1), "UUID"),
    (Path("x"), "PosixPath|WindowsPath"),
    ({"tools": [1, 2, {3}]}, r"key\['tools'\]\[2\] is of unsupported type set"),
    ({1: "int key"}, "dict key of type int"),
    ({("a",): "tuple key"}, "dict key of type tuple"),
    ({"t": math.nan}, r"key\['t'\] is nan"),
    ([math.inf], r"key\[0\] is inf"),
    (-math.inf, "-inf"),
    (Opaque(object()), r"key\['handle'\] is of unsupported type object"),
    (circular_list(), "refers to itself or is nested too deeply"),
    (deep_list(50_000), "refers to itself or is nested too deeply"),
]


@pytest.mark.parametrize(("material", "message"), UNSUPPORTED_KEYS)
async def test_unsupported_key_material_is_a_clear_error_before_anything_is_called(
    url: str, material: object, message: str
) -> None:
    upstream = Upstream()
    async with AgentCache(url) as cache:
        with pytest.raises(KeyMaterialError, match=message) as raised:
            await cache.get_or_call(material, upstream)
        assert isinstance(raised.value, TypeError)
        assert isinstance(raised.value, AgentCacheError)
        for method in (cache.get, cache.delete):
            with pytest.raises(KeyMaterialError):
                await method(material)
        with pytest.raises(KeyMaterialError):
            await cache.set(material, "v")
        with pytest.raises(KeyMaterialError):
            cache.key(material)
        assert upstream.calls == 0
        assert [k async for k, _ in cache.store.scan()] == []


async def test_a_10_mb_prompt_is_keyed_stored_and_served(url: str) -> None:
    prompt = "You are a careful assistant. " + os.urandom(5 * 1024 * 1024).hex()  # 10 MB
    upstream = Upstream(lambda key: f"answer to a prompt of {len(key)} chars")
    async with AgentCache(url) as cache:
        first = await cache.get_or_call(prompt, upstream)
        assert await cache.get_or_call(prompt, upstream) == first
        assert await cache.get_or_call(prompt[:-1] + "x", upstream) != "never"
        assert upstream.calls == 2  # a one-character change is another key
        material = {"messages": [{"role": "user", "content": prompt}], "model": "m"}
        structured = await cache.get_or_call(material, upstream)
        assert await cache.get_or_call(dict(reversed(material.items())), upstream) == structured
        assert upstream.calls == 3


async def huge_value_round_trips(url: str, megabytes: int) -> None:
    value = {"text": os.urandom(megabytes * 512 * 1024).hex(), "tokens": list(range(1000))}
    upstream = Upstream(lambda key: value)
    async with AgentCache(url) as cache:
        assert await cache.get_or_call("big", upstream) == value
    async with AgentCache(url, l1_max_entries=0) as cache:
        got = await cache.get_or_call("big", upstream)
        expected_calls = 2 if url == "memory://" else 1  # a new memory cache starts empty
        assert upstream.calls == expected_calls
        assert got == value


async def test_an_8_mb_value_round_trips_whole(url: str) -> None:
    await huge_value_round_trips(url, 8)


@pytest.mark.slow
async def test_a_50_mb_value_round_trips_whole(url: str) -> None:
    await huge_value_round_trips(url, 50)


UNICODE_KEYS = [
    "\ud800",  # a lone high surrogate
    "\udc00",
    "a\x00b",  # NUL inside
    "\x00",
    "",
    "e\u0301",  # e + combining acute: not normalised, so not equal to é
    "\u00e9",
    "\ufeffBOM",
    "\U0001f600",
    "\u202eRTL",
]


async def test_unicode_edge_cases_in_keys_and_values_round_trip_and_stay_distinct(url: str) -> None:
    upstream = Upstream(lambda key: {"echo": key if isinstance(key, str) else key["p"]})
    async with AgentCache(url) as cache:
        for key in UNICODE_KEYS:
            assert await cache.get_or_call(key, upstream) == {"echo": key}
            assert await cache.get_or_call({"p": key}, upstream) == {"echo": key}
        assert upstream.calls == 2 * len(UNICODE_KEYS)  # all distinct
        assert len({cache.key(k) for k in UNICODE_KEYS}) == len(UNICODE_KEYS)
    async with AgentCache(url, l1_max_entries=0) as cache:
        for key in UNICODE_KEYS:
            assert await cache.get_or_call(key, upstream) == {"echo": key}
        expected = 2 * len(UNICODE_KEYS) + (len(UNICODE_KEYS) if url == "memory://" else 0)
        assert upstream.calls == expected


async def test_a_value_that_refers_to_itself_is_returned_with_a_warning_and_not_stored(url: str) -> None:
    value = circular_list()
    async with AgentCache(url) as cache:
        with pytest.warns(AgentCacheWarning, match="could not store"):
            assert await cache.get_or_call("loop", Upstream(lambda key: value)) is value
        assert cache.stats.errors == 1
        assert await cache.get("loop", "absent") == "absent"


@pytest.mark.parametrize(
    "value",
    [math.nan, {"x": math.inf}, {1: "int key"}, {"s": {1, 2}}, ("a", "tuple"), {"b": b"bytes"}, object()],
)
async def test_a_value_json_cannot_hold_exactly_is_returned_with_a_warning(url: str, value: object) -> None:
    async with AgentCache(url) as cache:
        with pytest.warns(AgentCacheWarning, match="could not store"):
            assert await cache.get_or_call("k", Upstream(lambda key: value)) is value
        assert await cache.get("k", "absent") == "absent"
        with pytest.raises(AgentCacheError):
            await cache.set("k", value)


HOSTILE_NAMESPACES = [
    "",
    "a:b",
    "*",
    "a*",
    "?",
    "[abc]",
    "x'; DROP TABLE entries; --",
    'quote"',
    "back\\slash",
    "100%",
    "with space",
    "tab\t",
    "new\nline",
    "nul\x00",
    "del\x7f",
    "x" * 201,
    # Beyond ASCII: whitespace and invisible characters look like another namespace, or none.
    "line\u2028separator",
    "para\u2029separator",
    "zero\u200bwidth",
    "\ufeffbom",
    "no\u00a0break",
    "ideographic\u3000space",
    "next\u0085line",
    "right\u202eto-left",
    "soft\u00adhyphen",
    "mongolian\u180evowel",
    "word\u2060joiner",
    "lone\ud800surrogate",
]


@pytest.mark.parametrize("namespace", HOSTILE_NAMESPACES)
async def test_hostile_namespaces_are_rejected_clearly(url: str, namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        AgentCache(url, namespace=namespace)
    upstream = Upstream()
    async with AgentCache(url) as cache:
        with pytest.raises(ConfigurationError, match="namespace"):
            await cache.get_or_call("k", upstream, namespace=namespace)
        with pytest.raises(ConfigurationError, match="namespace"):
            await cache.clear(namespace)
        with pytest.raises(ConfigurationError, match="namespace"):
            cache.key("k", namespace)
    assert upstream.calls == 0


@pytest.mark.parametrize("namespace", [ns for ns in HOSTILE_NAMESPACES if ns and len(ns) <= 200])
def test_the_namespace_error_names_the_characters_it_refuses(namespace: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        AgentCache("memory://", namespace=namespace)
    message = str(raised.value)
    assert "without whitespace, control, invisible (format) or surrogate characters" in message
    found = message.rsplit("(found ", 1)[1].rstrip(")")
    assert found != "[]"
    assert all(char in namespace for char in ast.literal_eval(found))


@pytest.mark.parametrize(
    "namespace",
    [
        "caf\u00e9",
        "\u65e5\u672c\u8a9e",
        "emoji\U0001f600",
        "e\u0301",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    ],
)
async def test_namespaces_beyond_ascii_that_show_what_they_are_are_usable(url: str, namespace: str) -> None:
    async with AgentCache(url, namespace=namespace) as cache:
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
        assert cache.key("k").startswith(f"{namespace}:v1:")


@pytest.mark.parametrize("namespace", [1, None, b"bytes", ["list"]])
def test_a_namespace_that_is_not_a_string_is_rejected(namespace: object) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        AgentCache("memory://", namespace=namespace)  # type: ignore[arg-type]


SQL_AND_REDIS_MEANINGFUL = ["a_b", "axb", "drop;table--", "{tag}", "%s", "a$b", "é", "0", "a.b/c"]


async def test_namespaces_with_sql_or_redis_meaningful_characters_stay_isolated(url: str) -> None:
    usable = [ns for ns in SQL_AND_REDIS_MEANINGFUL if "%" not in ns]
    async with AgentCache(url) as cache:
        for ns in usable:
            await cache.set("k", f"value of {ns}", namespace=ns)
        for ns in usable:
            assert await cache.get("k", namespace=ns) == f"value of {ns}"
        assert await cache.clear("a_b") == 1  # "_" is no LIKE wildcard: axb survives
        assert await cache.get("k", namespace="axb") == "value of axb"
        assert await cache.get("k", namespace="a_b") is None
        assert await cache.clear("drop;table--") == 1
        for ns in usable:
            if ns not in ("a_b", "drop;table--"):
                assert await cache.get("k", namespace=ns) == f"value of {ns}"


BAD_TTLS: list[object] = [
    0,
    -1,
    -0.001,
    math.nan,
    math.inf,
    -math.inf,
    "60",
    True,
    [1],
    datetime.timedelta(0),
]
BAD_TTLS += [datetime.timedelta(seconds=-5)]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
async def test_bad_ttls_are_a_clear_error_before_anything_is_called(url: str, ttl: object) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        AgentCache(url, ttl=ttl)  # type: ignore[arg-type]
    upstream = Upstream()
    async with AgentCache(url) as cache:
        with pytest.raises(ConfigurationError, match="ttl"):
            await cache.get_or_call("k", upstream, ttl=ttl)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="ttl"):
            await cache.set("k", "v", ttl=ttl)  # type: ignore[arg-type]
        assert await cache.get("k") is None
    assert upstream.calls == 0


@pytest.mark.parametrize("mode", ["write", "readwrite", "", "REPLAY!", 5, "off "])
def test_unknown_modes_are_a_clear_error(mode: object) -> None:
    with pytest.raises(ConfigurationError, match=r"mode .*read_write"):
        AgentCache("memory://", mode=mode)  # type: ignore[arg-type]


def test_an_unknown_mode_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCACHE_MODE", "sometimes")
    with pytest.raises(ConfigurationError, match=r"\$AGENTCACHE_MODE 'sometimes'"):
        AgentCache("memory://")


@pytest.mark.parametrize("policy", ["ignore", "", None, 1])
def test_an_unknown_store_error_policy_is_a_clear_error(policy: object) -> None:
    with pytest.raises(ConfigurationError, match="on_store_error"):
        AgentCache("memory://", on_store_error=policy)  # type: ignore[arg-type]


MALFORMED_URLS: list[tuple[object, str]] = [
    ("", "not a URL"),
    ("cache.db", "not a URL"),
    ("sqlite:/x.db", "not a URL"),
    ("ftp://host/x", "unknown store scheme 'ftp'.*sqlite://"),
    ("sqlite://", "names no file"),
    ("sqlite:///", "names no file"),
    ("sqlite://host/x.db", "host part"),
    ("sqlite:///a%00b.db", "NUL"),
    ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
    ("sqlite:///x.db?busy_timeout=nan", "busy_timeout"),
    ("sqlite:///x.db?busy_timeout=-1", "busy_timeout"),
    ("sqlite:///x.db?timeout=1", "unknown option 'timeout'"),
    ("memory://?max_entries=lots", "max_entries"),
    ("memory://?max_entries=0", "max_entries"),
    ("memory://?max_entries=-5", "max_entries"),
    (12, "store URL or a Store"),
    (b"memory://", "store URL or a Store"),
]


@pytest.mark.parametrize(("bad", "message"), MALFORMED_URLS, ids=repr)
def test_malformed_urls_are_a_clear_error(bad: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AgentCache(bad)  # type: ignore[arg-type]


async def test_a_url_whose_folder_cannot_be_created_fails_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    upstream = Upstream()
    async with AgentCache(f"sqlite:///{blocker}/cache.db") as cache:
        with pytest.warns(AgentCacheWarning, match="cannot create"):
            assert await cache.get_or_call("k", upstream) == "answer to k"
        assert cache.stats.errors == 1


async def test_a_file_that_is_not_a_database_is_a_clear_error_and_never_written_to(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"hello, not a database")
    async with AgentCache(f"sqlite:///{path}") as cache:
        with pytest.raises(NotACacheFileError, match=r"notes\.db"):
            await cache.get_or_call("k", Upstream())
    assert path.read_bytes() == b"hello, not a database"


async def test_a_corrupt_database_file_fails_open_and_is_never_written_to(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    content = b"SQLite format 3\x00" + os.urandom(4000)
    path.write_bytes(content)
    async with AgentCache(f"sqlite:///{path}") as cache:
        with pytest.warns(AgentCacheWarning, match=r"broken\.db"):
            assert await cache.get_or_call("k", Upstream()) == "answer to k"
    assert path.read_bytes() == content


async def test_another_programs_database_is_never_written_to(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    async with AgentCache(f"sqlite:///{path}") as cache:
        with pytest.raises(NotACacheFileError, match="users"):
            await cache.get_or_call("k", Upstream())
    assert path.read_bytes() == before


async def test_corrupt_stored_bytes_are_a_miss_never_a_crash(db_url: str) -> None:
    upstream = Upstream()
    async with AgentCache(db_url) as cache:
        await cache.get_or_call("k", upstream)
        skey = cache.key("k")
    path = db_url.removeprefix("sqlite:///")
    for garbage in [b"", b"j", b"j{not json", b"z\x00\x01", b"\x80\x81", b"p\x80\x04K\x01."]:
        conn = sqlite3.connect(path)
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", (garbage, skey))
        conn.commit()
        conn.close()
        async with AgentCache(db_url) as cache:
            with pytest.warns(AgentCacheWarning, match="could not decode"):
                assert await cache.get_or_call("k", upstream) == "answer to k"
            assert await cache.get_or_call("k", upstream) == "answer to k"
    assert upstream.calls == 7
    conn = sqlite3.connect(path)
    (stored,) = conn.execute("SELECT value FROM entries WHERE key = ?", (skey,)).fetchone()
    conn.close()
    assert codec.decode(stored) == "answer to k"
