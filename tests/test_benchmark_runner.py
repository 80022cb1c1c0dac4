"""The benchmark runner: discovery, skipping, failures, the table; and a tiny run of the core rows.

These check the harness, never speed: ``--quick`` sizes make the figures meaningless.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as cli
from benchmarks.runner import ROW_KEYS, Outcome, discover, render, run_all

ROW = {
    "name": "thing",
    "baseline": "2.00 µs/op",
    "ours": "1.00 µs/op",
    "ratio": 0.5,
    "target": "≤ 1×",
    "met": True,
    "note": "compared with | care",
}


def _package(root: Path, name: str, modules: dict[str, str]) -> str:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, source in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return name


def test_every_module_with_an_async_run_is_found_and_the_rest_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(
        tmp_path,
        "bench_found",
        {
            "alpha": "async def run():\n    return []\n",
            "core": "async def run():\n    return []\n",
            "sync_run": "def run():\n    return []\n",
            "workload": "async def run():\n    return []\n",  # shared helpers are not benchmarks
            "_private": "async def run():\n    return []\n",
            "needs_extra": "import agentcache_no_such_extra\nasync def run():\n    return []\n",
        },
    )
    found = discover(package)
    assert [name for name, _ in found] == ["core", "alpha", "needs_extra"]  # core first
    skipped = dict(found)["needs_extra"]
    assert isinstance(skipped, str)
    assert "agentcache_no_such_extra" in skipped


def test_naming_an_unknown_module_says_which_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(tmp_path, "bench_unknown", {"alpha": "async def run():\n    return []\n"})
    with pytest.raises(SystemExit, match="no benchmark module named beta; found: alpha"):
        discover(package, only=["beta"])


async def test_a_failing_module_is_reported_and_the_others_still_run() -> None:
    async def good() -> list[dict[str, Any]]:
        return [ROW]

    async def broken() -> list[dict[str, Any]]:
        raise RuntimeError("disk full")

    async def incomplete() -> list[dict[str, Any]]:
        return [{"name": "half a row", "ratio": 1.0}]

    async def untargeted() -> list[dict[str, Any]]:
        return [{"name": "no target", "baseline": 3947.1, "ours": 4, "ratio": 0.958}]

    logged: list[str] = []
    outcomes = await run_all(
        [
            ("broken", broken),
            ("good", good),
            ("incomplete", incomplete),
            ("untargeted", untargeted),
            ("extra", "skipped: no redis"),
        ],
        logged.append,
    )
    by_name = {o.module: o for o in outcomes}
    assert by_name["broken"].failed == "failed: RuntimeError: disk full"
    assert by_name["good"].rows == [ROW]
    assert by_name["incomplete"].failed is not None
    assert "lacks baseline, ours" in by_name["incomplete"].failed
    assert by_name["untargeted"].rows == [
        {
            "name": "no target",
            "baseline": 3947.1,
            "ours": 4,
            "ratio": 0.958,
            "target": None,
            "met": None,
            "note": None,
        }
    ]
    assert by_name["extra"].skipped == "skipped: no redis"
    assert any("disk full" in line for line in logged)


def test_the_table_has_a_line_per_row_and_lists_notes_skips_and_failures() -> None:
    missed = {**ROW, "name": "missed", "ratio": 3.14159, "met": False}
    bare = {
        "name": "bare",
        "baseline": 3947.1,
        "ours": 4,
        "ratio": 0.958,
        "target": None,
        "met": None,
        "note": None,
    }
    table = render(
        [
            Outcome("core", rows=[ROW, missed, bare]),
            Outcome("redis", skipped="skipped: redis is not installed"),
            Outcome("broken", failed="failed: RuntimeError: boom"),
        ],
        ["_header_"],
    )
    lines = table.splitlines()
    assert lines[0] == "_header_"
    assert lines[2] == "| benchmark | baseline | ours | ratio | target | met? |"
    assert lines[4] == "| thing [1] | 2.00 µs/op | 1.00 µs/op | 0.50 | ≤ 1× | yes |"
    assert lines[5] == "| missed [2] | 2.00 µs/op | 1.00 µs/op | 3.14 | ≤ 1× | **no** |"
    assert lines[6] == "| bare [3] | 3,947 | 4 | 0.96 | – | – |"
    assert lines[7] == "| redis | – | – | – | – | – |"
    assert "1. compared with \\| care" in lines
    assert "3. –" in lines
    assert "4. redis: skipped: redis is not installed" in lines
    assert "5. broken: failed: RuntimeError: boom" in lines


def test_a_quick_run_of_the_core_rows_writes_a_complete_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCACHE_BENCH_QUICK", "1")  # restored afterwards
    out = tmp_path / "core.md"
    assert cli.main(["core", "--quick", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "[" in line]
    assert len(rows) == 6  # DESIGN §8: L1, cold hits, misses, identical calls, two size rows
    identical = next(line for line in rows if "identical calls" in line)
    assert identical.count("µs/caller, 1 call") == 2  # the baseline and agentcache each called upstream once
    assert all(len(line.split(" | ")) == len(ROW_KEYS) - 1 for line in rows)
