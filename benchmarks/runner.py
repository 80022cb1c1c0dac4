"""Find every benchmark module, run it, and render one markdown table of its rows.

A benchmark module is any module directly in ``benchmarks/`` (not a subpackage, not ``_private``)
that defines ``async def run() -> list[dict]``. Each row is a dict with the keys of ``ROW_KEYS``:
``baseline``/``ours`` are display strings with their unit (or plain numbers), ``ratio`` a number
(or a string); optionally ``target`` says what the ratio is held to, ``met`` is a bool (absent or
``None``: no target), and ``note`` explains what was compared. Modules need no registration:
dropping a file in the folder is enough. A module that cannot be imported because an optional extra
is missing is reported as one skipped row, naming the missing module; any other failure is reported
as a failed row and makes the run exit non-zero.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import os
import pkgutil
import platform
import sqlite3
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["ROW_KEYS", "Outcome", "discover", "render", "run_all"]

ROW_KEYS = ("name", "baseline", "ours", "ratio", "target", "met", "note")
_REQUIRED = ROW_KEYS[:4]
_COLUMNS = ("benchmark", "baseline", "ours", "ratio", "target", "met?")
# Not benchmarks: the runner itself and the modules benchmarks share.
_NOT_BENCHMARKS = frozenset({"runner", "workload", "measure", "machine"})

Run = Callable[[], Awaitable[list[dict[str, Any]]]]


@dataclass
class Outcome:
    """What one module produced: its rows, and whether it was skipped or failed."""

    module: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    failed: str | None = None


def discover(package: str = "benchmarks", only: Sequence[str] = ()) -> list[tuple[str, Run | str]]:
    """(module name, its ``run`` or why it was skipped), sorted by name, ``core`` first."""
    root = importlib.import_module(package)
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(root.__path__)
        if not info.ispkg and not info.name.startswith("_") and info.name not in _NOT_BENCHMARKS
    )
    names.sort(key=lambda name: name != "core")
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"no benchmark module named {', '.join(unknown)}; found: {', '.join(names)}")
        names = [name for name in names if name in only]
    found: list[tuple[str, Run | str]] = []
    for name in names:
        try:
            module = importlib.import_module(f"{package}.{name}")
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            found.append((name, f"skipped: {missing} is not installed ({exc})"))
            continue
        run = _run_of(module)
        if run is not None:
            found.append((name, run))
    return found


def _run_of(module: ModuleType) -> Run | None:
    run = getattr(module, "run", None)
    return run if inspect.iscoroutinefunction(run) else None


async def run_all(found: Iterable[tuple[str, Run | str]], log: Callable[[str], None]) -> list[Outcome]:
    """Run each module in turn (never two at once: they would time each other)."""
    outcomes: list[Outcome] = []
    for name, run in found:
        if isinstance(run, str):
            log(f"{name}: {run}")
            outcomes.append(Outcome(name, skipped=run))
            continue
        log(f"{name}: running...")
        started = time.perf_counter()
        outcome = Outcome(name)
        try:
            outcome.rows = [_checked(name, row) for row in await run()]
        except Exception as exc:
            outcome.failed = f"failed: {type(exc).__name__}: {exc}"
            log(traceback.format_exc())
        outcome.seconds = time.perf_counter() - started
        log(f"{name}: {len(outcome.rows)} rows in {outcome.seconds:.1f} s")
        outcomes.append(outcome)
    return outcomes


def _checked(module: str, row: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in _REQUIRED if key not in row]
    if missing:
        raise ValueError(f"a row of benchmarks.{module} lacks {', '.join(missing)}: {dict(row)!r}")
    return {key: row.get(key) for key in ROW_KEYS}


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _ratio(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _cell(value)


def render(outcomes: Sequence[Outcome], header: Sequence[str] = ()) -> str:
    """One markdown table of every row; notes, skips and failures listed under it."""
    lines = [*header, ""] if header else []
    lines.append("| " + " | ".join(_COLUMNS) + " |")
    lines.append("| --- | ---: | ---: | ---: | --- | :---: |")
    notes: list[str] = []
    for outcome in outcomes:
        if outcome.skipped or outcome.failed:
            reason = outcome.skipped or outcome.failed
            lines.append(f"| {outcome.module} | – | – | – | – | – |")
            notes.append(f"{outcome.module}: {reason}")
            continue
        for row in outcome.rows:
            number = len(notes) + 1
            cells = (
                f"{_cell(row['name'])} [{number}]",
                _cell(row["baseline"]),
                _cell(row["ours"]),
                _ratio(row["ratio"]),
                _cell(row["target"]),
                _cell(row["met"]),
            )
            lines.append("| " + " | ".join(cells) + " |")
            notes.append(_cell(row["note"]))
    if notes:
        lines.append("")
        lines.extend(f"{i}. {note}" for i, note in enumerate(notes, 1))
    return "\n".join(lines) + "\n"


def machine() -> str:
    """One line: when, on what, with which Python and SQLite."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"_Run {now} on {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, default asyncio loop. "
        "Medians of repeats; baseline and agentcache timed alternately in one process._"
    )
