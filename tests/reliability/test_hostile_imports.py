"""``agentcache import`` of a hostile file: one ``error: FILE:LINE: what is wrong``, exit 1, nothing written.

An import file may come from anywhere. Each case below puts one bad entry on line 3, after a good
one on line 2, into a store that already holds an entry: the command must name line 3 and the
problem, import neither entry, and leave the existing one exactly as it was, on every store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcache import codec
from agentcache.keys import Key
from tests.reliability.test_decompression_bombs import zlib_bomb
from tests.stores.conftest import delete_prefix
from tests.test_cli import KINDS, Cli

HEADER = '{"agentcache": "export", "format": 1, "exported_at": 1764260000.0}\n'
NOW = time.time()


def record(material: Any = None, answer: str = "an imported answer", **fields: Any) -> dict[str, Any]:
    """One valid export line (as a dict): ``material``'s key, ``answer`` stored as it is encoded."""
    material = {"q": "imported"} if material is None else material
    key = Key.of(material, "default")
    return {
        "key": key.stored,
        "material": json.loads(key.canonical),
        "value": base64.b64encode(codec.encode(answer)).decode("ascii"),
        "created_at": NOW,
        "expires_at": None,
        "call_seconds": 0.5,
        "meta": {"model": "m"},
        "hits": 0,
        "last_hit_at": None,
        **fields,
    }


def line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry) + "\n").encode()


def with_key(key: str) -> dict[str, Any]:
    return record(key=key, material=None)


DIGEST = Key.of({"q": "imported"}, "default").stored.split(":")[2]
DEEP = 100_000


def deep_material() -> bytes:
    good = json.dumps(record(material=None))
    return (good[:-1] + ', "material": ' + "[" * DEEP + "]" * DEEP + "}\n").encode()


def raw_number(field: str, text: str) -> bytes:
    """A line whose ``field`` is the JSON text ``text`` (NaN, Infinity: what json.dumps cannot be asked)."""
    good = record(**{field: 0})
    return line(good).replace(f'"{field}": 0'.encode(), f'"{field}": {text}'.encode())


BOMB = b"c" + zlib_bomb(256 * 1024 * 1024)
TIME_RANGE = "a time in seconds since 1970 (0 to 253402300799)"
KEY_SHAPE = "'key' must be a stored key like 'default:v1:<sha256 hex>', not"
NAMESPACE_RULE = (
    "is not usable: use at most 200 characters without whitespace, control, invisible (format) or "
    "surrogate characters, or any of : * ? [ ] \\ \" ' %"
)

CASES: list[tuple[str, bytes, str]] = [
    (
        "hits beyond any store's integer",
        line(record(hits=10**30)),
        "'hits' must be an integer from 0 to 9007199254740992, not 1000000000000000000000000000000",
    ),
    (
        "expires_at Infinity",
        raw_number("expires_at", "Infinity"),
        f"'expires_at' must be {TIME_RANGE} or null, not inf",
    ),
    ("created_at NaN", raw_number("created_at", "NaN"), f"'created_at' must be {TIME_RANGE}, not nan"),
    (
        "created_at too large for a float",
        raw_number("created_at", "1" + "0" * 400),
        f"'created_at' must be {TIME_RANGE}, not 1{'0' * 59}... (401 characters)",
    ),
    (
        "expires_at past year 9999",
        line(record(expires_at=1e300)),
        f"'expires_at' must be {TIME_RANGE} or null, not 1e+300",
    ),
    ("created_at before 1970", line(record(created_at=-1)), f"'created_at' must be {TIME_RANGE}, not -1"),
    (
        "last_hit_at text",
        line(record(last_hit_at="yesterday")),
        f"'last_hit_at' must be {TIME_RANGE} or null, not 'yesterday'",
    ),
    (
        "call_seconds negative",
        line(record(call_seconds=-1.0)),
        "'call_seconds' must be a finite number >= 0, not -1.0",
    ),
    (
        "call_seconds NaN",
        raw_number("call_seconds", "NaN"),
        "'call_seconds' must be a finite number >= 0, not nan",
    ),
    ("material nested 100k deep", deep_material(), "JSON nested too deeply (no export nests like this)"),
    (
        "an int longer than Python reads",
        raw_number("hits", "1" * 5000),
        "JSON that cannot be read: a number longer than 4300 digits (no export holds one)",
    ),
    (
        "a byte that is not UTF-8",
        b'{"key": "caf\xff"}\n',
        "the line is not UTF-8 text (byte 0xff at character 13)",
    ),
    (
        "namespace *",
        line(with_key(f"*:v1:{DIGEST}")),
        f"{KEY_SHAPE} '*:v1:{DIGEST}': namespace '*' {NAMESPACE_RULE} (found ['*'])",
    ),
    (
        "empty namespace",
        line(with_key(f":v1:{DIGEST}")),
        f"{KEY_SHAPE} ':v1:{DIGEST}': namespace must be a non-empty str, not ''",
    ),
    (
        "NUL in the namespace",
        line(with_key(f"a\x00b:v1:{DIGEST}")),
        f"{KEY_SHAPE} 'a\\x00b:v1:{DIGEST}': namespace 'a\\x00b' {NAMESPACE_RULE} (found ['\\x00'])",
    ),
    (
        "a zero-width space in the namespace",
        line(with_key(f"a\u200bb:v1:{DIGEST}")),
        f"{KEY_SHAPE} 'a\\u200bb:v1:{DIGEST}': namespace 'a\\u200bb' {NAMESPACE_RULE} (found ['\\u200b'])",
    ),
    (
        "a digest that is not hex",
        line(with_key("default:v1:" + "g" * 64)),
        f"{KEY_SHAPE} 'default:v1:{'g' * 64}': the digest must be 64 lowercase hex digits (sha256)",
    ),
    (
        "an upper-case digest",
        line(with_key(f"default:v1:{DIGEST.upper()}")),
        f"{KEY_SHAPE} 'default:v1:{DIGEST.upper()}': the digest must be 64 lowercase hex digits (sha256)",
    ),
    (
        "a short digest",
        line(with_key("default:v1:abc")),
        f"{KEY_SHAPE} 'default:v1:abc': the digest must be 64 lowercase hex digits (sha256)",
    ),
    (
        "an unknown key version",
        line(with_key(f"default:v2:{DIGEST}")),
        f"{KEY_SHAPE} 'default:v2:{DIGEST}': key version 'v2' is not 'v1', the one this agentcache computes",
    ),
    (
        "a key of four parts",
        line(with_key(f"default:v1:{DIGEST}:x")),
        f"{KEY_SHAPE} 'default:v1:{DIGEST}:x': a stored key has three parts, namespace:version:digest",
    ),
    (
        "a decompression bomb",
        line(record(value=base64.b64encode(BOMB).decode("ascii"))),
        "the value cannot be imported (stored value is larger than max_value_bytes=67108864 (a cache "
        "with a larger max_value_bytes wrote it, or it was crafted to inflate without end); it was not "
        "read; import --max-value-bytes raises the limit)",
    ),
    ("meta that is a list", line(record(meta=["model"])), "'meta' must be an object"),
    (
        "a forged text tag as material",
        line(record(key=f"default:v1:{DIGEST}", material={"$str": "!!not base64"})),
        "the key does not match its key material (was the material edited?)",
    ),
    (
        "a text tag of another type",
        line(record(key=f"default:v1:{DIGEST}", material={"$str": 5})),
        "the key does not match its key material (was the material edited?)",
    ),
    (
        "a text tag that is not UTF-8",
        line(record(key=f"default:v1:{DIGEST}", material={"$str": "/w=="})),
        "the key does not match its key material (was the material edited?)",
    ),
]


@pytest.fixture(params=KINDS)
def target(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    """A store on every backend that already holds one entry (``{"q": "kept"}``)."""
    cli = Cli(request.param, tmp_path, capsys)

    async def fill() -> None:
        async with cli.cache() as cache:
            await cache.set({"q": "kept"}, {"answer": "kept", "n": 1})

    asyncio.run(fill())
    yield cli
    if cli.kind == "redis":
        asyncio.run(delete_prefix(cli.prefix))


def contents(cli: Cli) -> tuple[list[dict[str, Any]], Any]:
    """What the store holds (every entry as ``ls`` shows it) and the kept entry's value."""
    listed = cli("ls", "--json")
    assert listed.code == 0, listed.err

    async def read() -> Any:
        async with cli.cache() as cache:
            return await cache.get({"q": "kept"}, "missing")

    return json.loads(listed.out), asyncio.run(read())


def import_file(cli: Cli, folder: Path, bad: bytes, *args: str) -> tuple[Path, Any]:
    path = folder / "hostile.jsonl"
    path.write_bytes(HEADER.encode() + line(record()) + bad + b'{"agentcache": "end", "entries": 2}\n')
    return path, cli("import", *args, str(path))


@pytest.mark.parametrize(("case", "bad", "reason"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_line_is_named_and_nothing_is_imported(
    target: Cli, tmp_path: Path, case: str, bad: bytes, reason: str
) -> None:
    before = contents(target)
    assert before[1] == {"answer": "kept", "n": 1}
    path, result = import_file(target, tmp_path, bad)
    assert result.err == f"error: {path}:3: {reason}; nothing was imported\n", case
    assert result.code == 1
    assert contents(target) == before  # neither line 2 nor line 3 was written; the kept entry is intact


def test_a_larger_limit_imports_a_large_value(target: Cli, tmp_path: Path) -> None:
    big = "x" * (2 * 1024 * 1024)
    entry = record(material={"q": "big"}, answer=big)
    path, result = import_file(target, tmp_path, line(entry), "--max-value-bytes", str(1024 * 1024))
    assert result.code == 1
    assert "larger than max_value_bytes=1048576" in result.err
    path.write_bytes(HEADER.encode() + line(entry) + b'{"agentcache": "end", "entries": 1}\n')
    assert target("import", "--max-value-bytes", str(4 * 1024 * 1024), str(path)).code == 0


@pytest.mark.parametrize("material", ["\ud800 a lone surrogate", {"p": "\udcff"}, "caf\u00e9 \U0001f600"])
def test_export_and_import_carry_keys_utf8_cannot_hold(target: Cli, tmp_path: Path, material: object) -> None:
    async def write() -> None:
        async with target.cache() as cache:
            await cache.set(material, "answer")

    async def clear() -> None:
        async with target.cache() as cache:
            await cache.clear()

    async def read() -> Any:
        async with target.cache() as cache:
            return await cache.get(material)

    asyncio.run(write())
    dump = tmp_path / "dump.jsonl"
    exported = target("export", str(dump))
    assert exported.code == 0, exported.err
    dump.read_bytes().decode("utf-8")  # strict UTF-8: a lone surrogate travels as a JSON escape
    asyncio.run(clear())
    imported = target("import", str(dump))
    assert imported.code == 0, imported.err
    assert asyncio.run(read()) == "answer"
