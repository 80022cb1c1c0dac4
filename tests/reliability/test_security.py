"""Security: no pickle, parameterised SQL only, private files, no key material on request, isolation.

A cache holds prompts and answers (personal data, often) and a shared store is written by many
processes: it must never be a code-execution path, an injection point, or readable by other users.
"""

from __future__ import annotations

import ast
import asyncio
import os
import pickle
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentcache
from agentcache import AgentCache, AgentCacheWarning
from tests.helpers import Upstream

PACKAGE = Path(agentcache.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
MARKER_ENV = "AGENTCACHE_TEST_PICKLE_MARKER"


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


# -- no pickle, no eval ------------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec", "__import__"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_deserialiser_that_can_run_code(source: Path) -> None:
    for node in ast.walk(parsed(source)):
        if isinstance(node, ast.Import):
            names = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in UNSAFE_CALLS, f"{source.name}:{node.lineno} calls {node.func.id}"
            continue
        else:
            continue
        assert not names & UNSAFE_MODULES, f"{source.name}:{node.lineno} imports {names}"


class Exploit:
    """Unpickling this writes a marker file: proof that a planted pickle ran."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(os.environ[MARKER_ENV]), "pwned"))


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "pwned"
    monkeypatch.setenv(MARKER_ENV, str(path))
    yield path
    assert not path.exists(), "a planted pickle was unpickled"


def planted_payloads() -> list[bytes]:
    raw = pickle.dumps(Exploit(), protocol=4)
    # Bare, and behind each format byte the codec knows or might be tricked into trying.
    return [raw, b"j" + raw, b"z" + raw, b"p" + raw, b"\x80" + raw[1:]]


def test_the_exploit_is_real(marker: Path) -> None:
    """The payload does run when unpickled, so the tests below can fail."""
    pickle.loads(planted_payloads()[0])  # on purpose
    assert marker.read_text() == "pwned"
    marker.unlink()


@pytest.mark.parametrize("value_type", [None, dict[str, Any], bytes])
async def test_a_pickle_planted_in_the_store_is_never_unpickled(
    db_url: str, marker: Path, value_type: Any
) -> None:
    upstream = Upstream(lambda key: {"safe": True} if value_type is not bytes else b"safe")
    async with AgentCache(db_url) as cache:
        await cache.get_or_call("k", upstream, value_type=value_type)
        skey = cache.key("k")
    path = db_url.removeprefix("sqlite:///")
    for payload in planted_payloads():
        conn = sqlite3.connect(path)
        conn.execute("UPDATE entries SET value = ?, meta = NULL WHERE key = ?", (payload, skey))
        conn.commit()
        conn.close()
        async with AgentCache(db_url) as cache:
            with pytest.warns(AgentCacheWarning, match="could not decode"):
                got = await cache.get_or_call("k", upstream, value_type=value_type)
            assert got == upstream.answer("k")
            assert await cache.get("k", value_type=value_type) == upstream.answer("k")


async def test_a_pickle_planted_in_an_entrys_metadata_is_never_unpickled(db_url: str, marker: Path) -> None:
    async with AgentCache(db_url) as cache:
        await cache.get_or_call("k", Upstream())
        skey = cache.key("k")
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    conn.execute("UPDATE entries SET meta = ?, material = ? WHERE key = ?", (*planted_payloads()[:2], skey))
    conn.commit()
    conn.close()
    async with AgentCache(db_url) as cache:
        assert await cache.get_or_call("k", Upstream()) == "answer to k"
        [entry async for _, entry in cache.store.scan()]


async def test_an_entry_with_unreadable_metadata_spoils_no_other_read(db_url: str) -> None:
    """Metadata is informational: a damaged one must not fail the batch it is read in."""
    upstream = Upstream()
    async with AgentCache(db_url) as cache:
        for key in ("damaged", "fine"):
            await cache.get_or_call(key, upstream)
        skey = cache.key("damaged")
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    conn.execute("UPDATE entries SET meta = ? WHERE key = ?", ("{not json", skey))
    conn.commit()
    conn.close()
    async with AgentCache(db_url, l1_max_entries=0) as cache:
        got = await asyncio.gather(*(cache.get_or_call(k, upstream) for k in ("damaged", "fine")))
        assert got == ["answer to damaged", "answer to fine"]
        assert (cache.stats.errors, upstream.calls) == (0, 2)


# -- SQL only with parameters ------------------------------------------------------------------

SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|PRAGMA|CREATE|DROP)\b")


def _is_placeholder_list(node: ast.expr) -> bool:
    """``",".join("?" * n)``: the only computed SQL fragment allowed (a list of placeholders)."""
    text = ast.unparse(node)
    return bool(re.fullmatch(r"""['"],['"]\.join\(['"]\?['"] \* len\(\w+\)\)""", text))


def _constant_strings_of(module: ast.Module, name: str) -> bool:
    """True if every value ever assigned to ``name`` in the module is a literal or placeholder list."""

    def literal_at(value: ast.expr, index: int | None) -> bool:
        if isinstance(value, ast.IfExp):
            return literal_at(value.body, index) and literal_at(value.orelse, index)
        if index is not None:
            return isinstance(value, ast.Tuple) and literal_at(value.elts[index], None)
        return (isinstance(value, ast.Constant) and isinstance(value.value, str)) or _is_placeholder_list(
            value
        )

    found = False
    for node in ast.walk(module):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                found = True
                if not literal_at(node.value, None):
                    return False
            if isinstance(target, ast.Tuple):
                for i, element in enumerate(target.elts):
                    if isinstance(element, ast.Name) and element.id == name:
                        found = True
                        if not literal_at(node.value, i):
                            return False
    return found


def _safe_fragment(module: ast.Module, node: ast.expr) -> bool:
    """A placeholder list, or a name only ever bound to literals and placeholder lists."""
    return _is_placeholder_list(node) or (
        isinstance(node, ast.Name) and _constant_strings_of(module, node.id)
    )


def sql_problems(module: ast.Module) -> list[str]:
    """Places where SQL text interpolates anything but placeholder lists and literal clauses."""
    problems = []
    for node in ast.walk(module):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if SQL_WORDS.search(text) and not text.startswith(("SQLite", "sqlite")):
                problems += [
                    f"line {node.lineno}: f-string SQL with {ast.unparse(part.value)}"
                    for part in node.values
                    if isinstance(part, ast.FormattedValue) and not _safe_fragment(module, part.value)
                ]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
            both_literal = isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)
            sql_side = any(
                isinstance(side, ast.Constant)
                and isinstance(side.value, str)
                and SQL_WORDS.search(side.value)
                for side in (node.left, node.right)
            )
            if sql_side and not both_literal:
                problems.append(f"line {node.lineno}: SQL built with {type(node.op).__name__}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            receiver = node.func.value
            template = receiver.value if isinstance(receiver, ast.Constant) else None
            is_sql = (isinstance(template, str) and SQL_WORDS.search(template)) or (
                isinstance(receiver, ast.Name) and (receiver.id.isupper() or receiver.id == "sql")
            )
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if is_sql and not _safe_fragment(module, arg):
                    problems.append(f"line {node.lineno}: SQL .format() with {ast.unparse(arg)}")
    return problems


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_sql_text_is_never_built_from_values(source: Path) -> None:
    """SQL strings interpolate nothing but placeholder lists and literal clauses; values are bound."""
    assert sql_problems(parsed(source)) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "conn.execute(f\"DELETE FROM entries WHERE namespace = '{namespace}'\")",
        "conn.execute(\"SELECT * FROM entries WHERE key = '%s'\" % key)",
        'conn.execute("SELECT * FROM entries WHERE key = \'" + key + "\'")',
        'conn.execute("DELETE FROM entries WHERE key = {}".format(key))',
        'where = "WHERE namespace = " + ns\nconn.execute(SELECT.format(where))',
        'marks = ",".join(keys)\nconn.execute(f"SELECT * FROM entries WHERE key IN ({marks})")',
    ],
)
def test_the_sql_check_catches_values_in_sql_text(snippet: str) -> None:
    assert sql_problems(ast.parse(snippet))


HOSTILE = "x'); DROP TABLE entries; --"


async def test_hostile_text_everywhere_is_stored_as_data(db_url: str) -> None:
    values = {"answer": HOSTILE, HOSTILE: [HOSTILE, "'", '"', ";", "\\"]}
    upstream = Upstream(lambda key: values)
    async with AgentCache(db_url) as cache:
        for key in (HOSTILE, {HOSTILE: HOSTILE}, ["'", '"', "--", "/*", "*/", "%", "_"]):
            got = await cache.get_or_call(
                key, upstream, label=HOSTILE, describe=lambda v: {"model": HOSTILE, HOSTILE: 1}
            )
            assert got == values
        await cache.set(HOSTILE, HOSTILE, namespace="robert;--")
        assert await cache.clear("robert;--") == 1
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"entries", "agentcache_meta"} <= tables
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (3,)
    finally:
        conn.close()


# -- private files -----------------------------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 0: any private mode must come from agentcache itself, not from the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
async def test_the_cache_folder_is_0700_and_its_files_0600(tmp_path: Path) -> None:
    folder = tmp_path / ".agentcache"
    db = folder / "cache.db"
    async with AgentCache(f"sqlite:///{db}") as cache:
        await cache.get_or_call("personal prompt", Upstream())
        files = sorted(folder.iterdir())
        assert {p.name for p in files} >= {"cache.db", "cache.db-wal", "cache.db-shm"}
        for path in files:
            assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
    assert mode(folder) == 0o700
    for path in folder.iterdir():
        assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"


@pytest.mark.usefixtures("permissive_umask")
async def test_the_default_url_creates_a_private_folder_in_the_working_directory(tmp_path: Path) -> None:
    async with AgentCache() as cache:  # conftest chdir()s into tmp_path
        await cache.get_or_call("q", Upstream())
    assert mode(tmp_path / ".agentcache") == 0o700
    assert mode(tmp_path / ".agentcache" / "cache.db") == 0o600


# -- store_key_material=False ------------------------------------------------------------------

SECRET = "patient 4711 has condition XYZ-SECRET-PROMPT"


def file_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


@pytest.mark.parametrize("store_key_material", [False, True])
async def test_store_key_material_false_leaves_no_trace_of_the_prompt(
    tmp_path: Path, store_key_material: bool
) -> None:
    folder = tmp_path / "private"
    url = f"sqlite:///{folder / 'c.db'}"
    upstream = Upstream(lambda key: "a harmless answer")
    async with AgentCache(url, store_key_material=store_key_material) as cache:
        await cache.get_or_call(SECRET, upstream)
        await cache.get_or_call({"messages": [SECRET], "model": "m"}, upstream)
        await cache.set({"prompt": SECRET}, "set directly")
        entries = [entry async for _, entry in cache.store.scan()]
        assert len(entries) == 3
        leaked = file_bytes(folder)
    async with AgentCache(url) as cache:  # served by hash alone
        assert await cache.get_or_call(SECRET, Upstream()) == "a harmless answer"
    if store_key_material:
        assert all(e.material for e in entries)
        assert SECRET.encode() in leaked  # the check below can fail
    else:
        assert all(e.material is None for e in entries)
        assert SECRET.encode() not in leaked
        assert SECRET.encode("utf-16-le") not in leaked


# -- namespaces are isolation ------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def shared_url(request: pytest.FixtureRequest, db_url: str) -> str:
    return "memory://" if request.param == "memory" else db_url


async def test_no_api_path_crosses_namespaces(shared_url: str) -> None:
    upstream = Upstream(lambda key: f"answer for {key}")
    if shared_url == "memory://":
        a = AgentCache(shared_url, namespace="a")
        store = a.store
        b = AgentCache(store, namespace="ab")  # one store, two namespaces (one a prefix)
    else:
        a = AgentCache(shared_url, namespace="a")
        b = AgentCache(shared_url, namespace="ab")
    async with a, b:
        assert await a.get_or_call("q", upstream) == "answer for q"
        assert upstream.calls == 1
        assert await b.get("q") is None
        assert await b.get_or_call("q", upstream) == "answer for q"
        assert upstream.calls == 2  # b paid for its own answer
        await b.set("only b", "b's")
        assert await a.get("only b") is None
        assert a.key("q") != b.key("q")
        assert await b.delete("q") is True
        assert await a.get("q") == "answer for q"
        assert await b.clear() == 1  # "only b"; the prefix namespace "a" is untouched
        assert await a.get("q") == "answer for q"
        assert await a.clear() == 1
        assert [k async for k, _ in a.store.scan("a")] == []
        # An explicit namespace reaches exactly that namespace, nothing else.
        await a.set("x", 1, namespace="ab")
        assert await b.get("x") == 1
        assert await a.get("x") is None


async def test_the_same_material_in_two_namespaces_is_two_entries(db_url: str) -> None:
    async with AgentCache(db_url, namespace="prod") as prod, AgentCache(db_url, namespace="eval") as ev:
        await prod.set("k", "prod answer")
        await ev.set("k", "eval answer")
        assert (await prod.get("k"), await ev.get("k")) == ("prod answer", "eval answer")
        keys = sorted([k async for k, _ in prod.store.scan()])
        assert [k.split(":")[0] for k in keys] == ["eval", "prod"]
