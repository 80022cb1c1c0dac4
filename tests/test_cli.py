"""The ``agentcache`` command, in-process (``main([...])`` with captured output) on every store.

memory:// lives in one process, so its commands run against a store handed to ``main(store=...)``;
SQLite and Redis (a key prefix per test) run through ``--url`` exactly as a shell would. One test
runs the real console script.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentcache import AgentCache
from agentcache.cli import INSTALL_HINT, main
from agentcache.stores.memory import MemoryStore
from tests.stores.conftest import REDIS_OWN_DB_URL, REDIS_URL, delete_prefix, require_redis

KINDS = ["memory", "sqlite", "redis"]


class Summary(BaseModel):
    title: str
    words: int


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs the command against one store: memory://, SQLite, or Redis (a key prefix of its own)."""

    def __init__(self, kind: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.kind = kind
        self.path = folder / f"{kind}.db"
        self.memory = MemoryStore() if kind == "memory" else None
        self.prefix = f"agentcache-cli-test:{uuid.uuid4().hex[:12]}:"
        if kind == "redis":
            require_redis()
            self.url = f"{REDIS_URL}?prefix={self.prefix}"
        else:
            self.url = f"sqlite:///{self.path}"
        self._capsys = capsys

    def __call__(self, *args: str) -> Result:
        argv = list(args) if self.memory is not None else ["--url", self.url, *args]
        code = main(argv, store=self.memory)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def cache(self, **options: Any) -> AgentCache:
        return AgentCache(self.memory if self.memory is not None else self.url, **options)


@pytest.fixture
def make_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str, str], Cli]]:
    """Builds Clis in their own folders; deletes their Redis keys afterwards."""
    made: list[Cli] = []

    def make(kind: str, name: str = "store") -> Cli:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        made.append(Cli(kind, folder, capsys))
        return made[-1]

    yield make
    for cli in made:
        if cli.kind == "redis":
            asyncio.run(delete_prefix(cli.prefix))


@pytest.fixture(params=KINDS)
def cli(request: pytest.FixtureRequest, make_cli: Callable[[str, str], Cli]) -> Cli:
    return make_cli(request.param, "store")


def request_material(temperature: float = 0.0, question: str = "Capital of France?") -> dict[str, Any]:
    return {
        "model": "openai:gpt-4o",
        "messages": [{"kind": "request", "parts": [{"part_kind": "user-prompt", "content": question}]}],
        "settings": {"temperature": temperature},
    }


async def _fill(cli: Cli) -> None:
    """Three entries: a researcher request hit twice, a writer prompt, an old expired one."""
    usage = {"model": "gpt-4o", "input_tokens": 100, "output_tokens": 20, "cost": 0.002}

    async def answer(key: object) -> dict[str, Any]:
        return {"answer": "Paris", "sources": ["atlas"]}

    async def summary(key: object) -> Summary:
        return Summary(title="Sales", words=120)

    async with cli.cache() as cache:
        for _ in range(3):  # one call, then two hits
            await cache.get_or_call(request_material(), answer, label="researcher", describe=lambda v: usage)
        await cache.get_or_call("Write a haiku about caching.", summary, label="writer", value_type=Summary)
    past = time.time() - 3 * 86400
    async with cli.cache(clock=lambda: past, ttl=60) as old:
        await old.get_or_call("an old prompt", answer, namespace="archive")


@pytest.fixture
def filled(cli: Cli) -> Cli:
    asyncio.run(_fill(cli))
    return cli


def keys_of(cli: Cli, *args: str) -> list[str]:
    result = cli("ls", "--json", *args)
    assert result.code == 0, result.err
    return [row["key"] for row in json.loads(result.out)]


# -- stats -----------------------------------------------------------------------------------


def test_stats_totals_entries_hits_and_what_they_saved(filled: Cli) -> None:
    result = filled("stats", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["total"]["entries"] == 3
    assert data["total"]["expired"] == 1
    assert data["total"]["hits"] == 2
    assert data["total"]["saved_input_tokens"] == 200
    assert data["total"]["saved_output_tokens"] == 40
    assert data["total"]["saved_cost"] == pytest.approx(0.004)
    assert data["by_label"]["researcher"]["hits"] == 2
    assert data["by_label"]["writer"]["entries"] == 1
    assert data["by_namespace"]["archive"]["entries"] == 1
    assert data["by_model"]["gpt-4o"]["saved_calls"] == 2
    assert (data["disk_bytes"] is None) == (filled.kind != "sqlite")  # only a file has a size


def test_stats_since_leaves_out_older_entries(filled: Cli) -> None:
    data = json.loads(filled("stats", "--json", "--since", "1d").out)
    assert data["total"]["entries"] == 2
    assert "archive" not in data["by_namespace"]


def test_stats_reads_as_text_when_piped(filled: Cli) -> None:
    result = filled("stats")
    assert "entries       3 (1 expired)" in result.out
    assert "saved tokens  200 in, 40 out" in result.out
    assert "researcher" in result.out
    assert "┏" not in result.out  # no box drawing into a pipe


# -- ls / show -------------------------------------------------------------------------------


def test_ls_lists_newest_first_with_a_header(filled: Cli) -> None:
    result = filled("ls")
    lines = result.out.splitlines()
    assert lines[0].split() == ["key", "model", "label", "recorded", "(UTC)", "expires", "hits", "size"]
    assert len(lines) == 4
    assert "writer" in lines[1]
    assert "researcher" in lines[2]
    assert "expired" in lines[3]


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (("--label", "researcher"), 1),
        (("--model", "gpt-4o"), 1),
        (("--namespace", "archive"), 1),
        (("--min-hits", "1"), 1),
        (("--max-hits", "0"), 2),
        (("--older-than", "1d"), 1),
        (("--newer-than", "1h"), 2),
        (("--limit", "2"), 2),
    ],
)
def test_ls_filters(filled: Cli, args: tuple[str, ...], count: int) -> None:
    assert len(keys_of(filled, *args)) == count


def test_ls_json_has_what_a_script_needs(filled: Cli) -> None:
    (row,) = json.loads(filled("ls", "--json", "--label", "researcher").out)
    assert row["hits"] == 2
    assert row["meta"]["input_tokens"] == 100
    assert row["has_material"] is True
    assert row["key"].startswith("default:v1:")


def test_rich_style_draws_a_table_with_ages_for_people(filled: Cli) -> None:
    lines = filled("--style", "rich", "ls").out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["key"])
    assert set(lines[header + 1].strip()) == {"─"}  # the rule under the header
    assert "researcher" in lines[header + 3]  # never cut, even at 80 columns
    assert "3d ago" in lines[header + 4]
    assert "(UTC)" not in lines[header]


def test_show_prints_material_value_and_meta_by_hash_prefix(filled: Cli) -> None:
    (key,) = keys_of(filled, "--label", "researcher")
    result = filled("show", "--json", key.split(":")[2][:10])
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["key"] == key
    assert data["material"] == request_material()
    assert data["value"] == {"answer": "Paris", "sources": ["atlas"]}
    assert data["meta"]["label"] == "researcher"
    text = filled("show", key).out
    assert '"temperature": 0' in text
    assert '"answer": "Paris"' in text


def test_show_of_an_unknown_key_fails_plainly(filled: Cli) -> None:
    result = filled("show", "0123456789ab")
    assert result.code == 1
    assert "no entry matches '0123456789ab'" in result.err


def test_a_too_short_prefix_is_refused(filled: Cli) -> None:
    result = filled("rm", "ab")
    assert result.code == 1
    assert "too short" in result.err


# -- explain ---------------------------------------------------------------------------------


def test_explain_reads_key_material_from_a_file(filled: Cli, tmp_path: Path) -> None:
    source = tmp_path / "request.json"
    source.write_text(json.dumps(request_material(temperature=0.7)))
    result = filled("explain", str(source))
    assert result.code == 0, result.err
    assert "settings.temperature: 0 -> 0.7" in result.out


def test_explain_reads_stdin_and_prints_json(filled: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    material = request_material(question="Capital of Spain?")
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(material)))
    data = json.loads(filled("explain", "--json", "-").out)
    assert data["nearest"][0]["changes"][0]["path"] == "messages[0].parts[0].content"


def test_explain_a_plain_prompt_with_text(filled: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Write a haiku about caches.\n"))
    result = filled("explain", "--text", "-")
    assert '"…caching.' not in result.out
    assert "caching" in result.out
    assert "caches" in result.out


def test_explain_a_stored_key_against_its_neighbours(filled: Cli) -> None:
    async def more() -> None:
        async def answer(key: object) -> str:
            return "x"

        async with filled.cache() as cache:
            await cache.get_or_call(request_material(temperature=1.0), answer)

    asyncio.run(more())
    (key,) = keys_of(filled, "--label", "researcher")
    result = filled("explain", "--key", key)
    assert "stored   yes" in result.out
    assert "settings.temperature: 1 -> 0" in result.out


def test_explain_needs_material_or_a_key(filled: Cli) -> None:
    assert filled("explain").code == 2


# -- deleting --------------------------------------------------------------------------------


def test_rm_deletes_the_named_entries(filled: Cli) -> None:
    keys = keys_of(filled)
    result = filled("rm", keys[0], keys[1].split(":")[2][:8])
    assert result.code == 0, result.err
    assert "removed 2 entries" in result.err
    assert keys_of(filled) == keys[2:]


def test_clear_without_yes_refuses_when_nobody_can_answer(filled: Cli) -> None:
    result = filled("clear")
    assert result.code == 2
    assert "--yes" in result.err
    assert len(keys_of(filled)) == 3


def test_clear_asks_on_a_terminal(filled: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert filled("clear").code == 1  # answered no: aborted, nothing deleted
    assert len(keys_of(filled)) == 3
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert filled("clear", "--namespace", "archive").code == 0
    assert len(keys_of(filled)) == 2


def test_clear_yes_deletes_everything(filled: Cli) -> None:
    result = filled("clear", "--yes")
    assert "removed 3 entries (every namespace)" in result.err
    assert keys_of(filled) == []


@pytest.mark.parametrize("namespace", ["*", ""])
@pytest.mark.parametrize(
    "command", [("clear", "--yes"), ("ls",), ("prune",), ("export", "-"), ("explain", "--key", "0")]
)
def test_a_namespace_option_that_is_a_pattern_is_refused_before_the_store_is_touched(
    filled: Cli, command: tuple[str, ...], namespace: str
) -> None:
    result = filled(*command, "--namespace", namespace)
    assert result.code == 2
    assert "'--namespace'" in result.err
    assert f"namespace {namespace!r}" in result.err or "non-empty" in result.err
    assert len(keys_of(filled)) == 3


def test_clear_of_a_glob_namespace_on_redis_deletes_nothing(make_cli: Callable[[str, str], Cli]) -> None:
    cli = make_cli("redis", "own database")
    cli.url = f"{REDIS_OWN_DB_URL}?prefix={cli.prefix}"  # nothing else is in reach if this regresses
    try:
        asyncio.run(_fill(cli))
        result = cli("clear", "-n", "*", "--yes")
        assert (result.code, result.out) == (2, "")
        assert "not usable" in result.err
        assert len(keys_of(cli)) == 3
        assert "removed 1 entry (namespace 'archive')" in cli("clear", "-n", "archive", "--yes").err
    finally:
        asyncio.run(delete_prefix(cli.prefix, REDIS_OWN_DB_URL))


def test_prune_removes_expired_entries(filled: Cli) -> None:
    dry = filled("prune", "--dry-run")
    assert "would remove 1 entries: 1 expired" in dry.err
    assert len(keys_of(filled)) == 3
    assert "removed 1 entries" in filled("prune").err
    assert keys_of(filled, "--namespace", "archive") == []


def test_prune_older_than(filled: Cli) -> None:
    filled("prune")
    assert "0 old" in filled("prune", "--older-than", "1h").err
    assert "would remove 0 entries" in filled("prune", "--older-than", "2000-01-01T00:00", "--dry-run").err
    assert "2 old" in filled("prune", "--older-than", "0s").err
    assert keys_of(filled) == []


def test_prune_max_size_evicts_the_least_recently_hit(filled: Cli) -> None:
    filled("prune")
    rows = json.loads(filled("ls", "--json").out)
    hit = next(row for row in rows if row["hits"])
    result = filled("prune", "--max-size", str(hit["size"]))
    assert "1 evicted for size" in result.err
    # The writer's entry is newer but was never hit: it goes first.
    assert keys_of(filled) == [hit["key"]]


def test_vacuum_gives_space_back_where_the_store_can(cli: Cli) -> None:
    async def fill() -> None:
        async def big(key: object) -> str:
            return os.urandom(4000).hex()

        async with cli.cache() as cache:
            for i in range(200):
                await cache.get_or_call(f"prompt {i}", big)

    asyncio.run(fill())
    cli("clear", "--yes")
    before = json.loads(cli("stats", "--json").out)["disk_bytes"]
    result = cli("vacuum")
    assert result.code == 0, result.err
    if cli.kind != "sqlite":
        assert "nothing to vacuum" in result.err
        return
    after = json.loads(cli("stats", "--json").out)["disk_bytes"]
    assert before > 1_000_000  # 200 answers of 8 kB were written
    assert after < before / 10
    assert result.err.startswith(f"vacuumed {cli.url}: ")


def test_reading_a_missing_sqlite_file_does_not_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing" / "here.db"
    assert main(["--url", f"sqlite:///{path}", "ls"]) == 1
    assert "no cache at" in capsys.readouterr().err
    assert not path.exists()


def test_a_bad_url_names_the_known_schemes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "ftp://x", "stats"]) == 1
    assert "known schemes" in capsys.readouterr().err


def test_a_bad_url_from_the_environment_is_named_as_such(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCACHE_URL", "foo")
    assert main(["stats"]) == 1
    assert capsys.readouterr().err.startswith("error: $AGENTCACHE_URL='foo' names no store")
    assert main(["--url", "foo", "stats"]) == 1
    assert "AGENTCACHE_URL" not in capsys.readouterr().err


# -- export / import -------------------------------------------------------------------------


def _gets(cli: Cli, keys: list[tuple[Any, str | None, Any]]) -> list[Any]:
    async def read() -> list[Any]:
        async with cli.cache() as cache:
            return [await cache.get(k, namespace=ns, value_type=vt) for k, ns, vt in keys]

    return asyncio.run(read())


LOOKUPS: list[tuple[Any, str | None, Any]] = [
    (request_material(), None, None),
    ("Write a haiku about caching.", None, Summary),
]


@pytest.mark.parametrize("target_kind", KINDS)
def test_export_then_import_into_a_fresh_store_gives_identical_gets(
    filled: Cli, target_kind: str, tmp_path: Path, make_cli: Callable[[str, str], Cli]
) -> None:
    dump = tmp_path / "warm.jsonl"
    result = filled("export", str(dump))
    assert result.code == 0, result.err
    assert "exported 2 entries" in result.err  # the expired one is not exported
    target = make_cli(target_kind, "target")
    imported = target("import", str(dump))
    assert imported.code == 0, imported.err
    assert "imported 2 entries" in imported.err
    originals = _gets(filled, LOOKUPS)
    assert originals[1] == Summary(title="Sales", words=120)
    assert _gets(target, LOOKUPS) == originals
    assert (
        json.loads(target("ls", "--json").out)[0]["meta"] == json.loads(filled("ls", "--json").out)[0]["meta"]
    )
    again = target("import", str(dump))
    assert "imported 0 entries; kept 2 already stored" in again.err
    assert "imported 2 entries" in target("import", "--overwrite", str(dump)).err


def test_export_to_stdout(filled: Cli) -> None:
    lines = filled("export", "-").out.splitlines()
    assert json.loads(lines[0])["agentcache"] == "export"
    assert json.loads(lines[-1]) == {"agentcache": "end", "entries": 2}


def _corrupt(lines: list[str], how: str) -> str:
    if how == "truncated":
        return "".join(lines)[:-40]
    if how == "cut at a line":
        return "".join(lines[:-1])
    if how == "bad json":
        return "".join([*lines[:2], "{not json\n", *lines[2:]])
    record = json.loads(lines[1])  # the request with structured key material
    if how == "edited material":
        record["material"]["settings"]["temperature"] = 0.9
    elif how == "bad value":
        record["value"] = "!!!"
    elif how == "no key":
        del record["key"]
    return "".join([lines[0], json.dumps(record) + "\n", *lines[2:]])


@pytest.mark.parametrize(
    ("how", "line", "reason"),
    [
        ("truncated", 3, "cut off"),
        ("cut at a line", 3, "ends without its end line"),
        ("bad json", 3, "not JSON"),
        ("edited material", 2, "does not match its key material"),
        ("bad value", 2, "not valid base64"),
        ("no key", 2, "'key' must be a stored key"),
    ],
)
def test_a_corrupt_import_names_the_line_and_imports_nothing(
    filled: Cli, tmp_path: Path, make_cli: Callable[[str, str], Cli], how: str, line: int, reason: str
) -> None:
    dump = tmp_path / "warm.jsonl"
    filled("export", str(dump))
    lines = dump.read_text().splitlines(keepends=True)
    lines = [lines[0], *sorted(lines[1:-1], key=lambda s: 'material":{' not in s), lines[-1]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_corrupt(lines, how))
    target = make_cli(filled.kind, "target")
    result = target("import", str(bad))
    assert result.code == 1
    assert f"bad.jsonl:{line}: " in result.err
    assert reason in result.err
    assert "nothing was imported" in result.err
    if target.kind == "sqlite":
        assert target("ls", "--json").out in ("", "[]\n")
    else:
        assert target("ls", "--json").out == "[]\n"


def test_importing_a_file_that_is_not_an_export_fails_on_line_one(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "other.jsonl"
    bad.write_text('{"hello": 1}\n')
    result = cli("import", str(bad))
    assert result.code == 1
    assert "other.jsonl:1: not an agentcache export" in result.err


# -- the installed command -------------------------------------------------------------------


def _script() -> str:
    return str(Path(sys.executable).with_name("agentcache"))


@pytest.fixture
def sqlite_filled(make_cli: Callable[[str, str], Cli]) -> Iterator[Cli]:
    cli = make_cli("sqlite", "store")
    asyncio.run(_fill(cli))
    return cli


def test_the_console_script_runs(sqlite_filled: Cli) -> None:
    env = {**os.environ, "AGENTCACHE_URL": sqlite_filled.url}
    done = subprocess.run(
        [_script(), "ls", "--json"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
    module = subprocess.run(
        [sys.executable, "-m", "agentcache", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert module.returncode == 0
    assert "explain" in module.stdout


def test_without_the_cli_extra_the_command_prints_the_install_hint() -> None:
    code = (
        "import sys; sys.modules['click'] = None; sys.modules['rich'] = None\n"
        "import agentcache\n"
        "from agentcache.cli import main\n"
        "sys.exit(main(['ls']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert INSTALL_HINT in done.stderr


def test_export_to_stdout_imports_from_stdin(
    filled: Cli, make_cli: Callable[[str, str], Cli], monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = filled("export", "-").out
    target = make_cli(filled.kind, "piped")
    monkeypatch.setattr(sys, "stdin", io.StringIO(dump))
    result = target("import", "-")
    assert result.code == 0, result.err
    assert "imported 2 entries" in result.err
    assert _gets(target, LOOKUPS) == _gets(filled, LOOKUPS)
