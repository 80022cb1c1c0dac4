"""The figures of the SQLite file faults, for the reliability docs: one row per fault.

Run as root (it mounts tmpfs file systems) from the repository root::

    PYTHONPATH=$PWD python -m tests.reliability.file_fault_figures

Each fault is made for real, under a cache with its default settings, while bursts of work go on
(20 new keys and 20 stored keys at once, 100 bursts, 20 ms apart). Per fault:

- **acked lost**: answers whose call counted as stored (``stats.stores`` of their label grew) that
  the file at the path, opened afterwards as the next process opens it, does not hold. Answers
  stored *before* the fault are not counted: deleting the file deletes them, by definition.
- **served**: of the stored answers asked for while degraded, how many came back without calling
  (for the faults where they are still in the file at the path).
- **longest stall**: the longest single ``get_or_call`` while degraded.
- **warnings**: ``AgentCacheWarning``\\s emitted in the whole run (one per outage is the target).
- **theirs written**: whether a file that is not the cache's (another program's, or one written
  over) reads differently afterwards: other bytes, or other tables as SQLite reads it (the cache's
  write-ahead log, left under the path's name, would make SQLite read our pages as its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agentcache import AgentCache, AgentCacheWarning
from tests.reliability.file_faults import fill_up, run_fresh_process, stored_keys

BURSTS = 100
PER_BURST = 20
KNOWN = 2000


@dataclass
class Figures:
    fault: str
    acked: int = 0
    lost: int | None = None
    served: tuple[int, int] | None = None
    stall: float = 0.0
    warnings: int = 0
    theirs_written: bool | None = None
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        served = "n/a" if self.served is None else f"{self.served[0]}/{self.served[1]}"
        theirs = "n/a" if self.theirs_written is None else ("yes" if self.theirs_written else "no")
        lost = "n/a" if self.lost is None else f"{self.lost} of {self.acked}"
        return (
            f"| {self.fault} | {lost} | {served} | {self.stall * 1000:.0f} ms | {self.warnings} | {theirs} |"
        )


def answer(key: str) -> str:
    return f"answer to {key}"


async def call(key: str) -> str:
    return answer(key)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="agentcache-figures-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


async def fill(cache: AgentCache, known: int) -> None:
    for start in range(0, known, 200):
        await asyncio.gather(
            *(cache.get_or_call(f"k{i}", call) for i in range(start, min(known, start + 200)))
        )


async def degraded_run(cache: AgentCache, figures: Figures, known: int) -> list[str]:
    """The bursts after the fault; returns the new keys acknowledged as stored."""
    acked: list[str] = []
    called: set[str] = set()

    async def counted(key: str) -> str:
        called.add(key)
        return answer(key)

    async def one(key: str) -> None:
        started = time.perf_counter()
        got = await cache.get_or_call(key, counted, label=key)
        figures.stall = max(figures.stall, time.perf_counter() - started)
        assert got == answer(key), (key, got)

    asked: list[str] = []
    for burst in range(BURSTS):
        news = [f"new{burst}-{i}" for i in range(PER_BURST)]
        olds = [f"k{(burst * PER_BURST + i) % known}" for i in range(PER_BURST)] if known else []
        asked += olds
        await asyncio.gather(*(one(key) for key in news + olds))
        acked += [key for key in news if cache.stats.by_label[key].stores]
        await asyncio.sleep(0.02)
    if known:
        figures.served = (sum(key not in called for key in asked), len(asked))
    return acked


def lost_of(db: Path, cache: AgentCache, acked: list[str]) -> int:
    try:
        found = stored_keys(db)
    except sqlite3.Error:
        found = set()
    return sum(cache.key(key) not in found for key in acked)


View = tuple[str, str]


def view(path: Path) -> View:
    """A file as a program would find it: its bytes, and its tables as SQLite reads them (log included)."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            names = sorted(
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
        finally:
            conn.close()
        tables = ",".join(names)
    except sqlite3.Error as exc:
        tables = type(exc).__name__
    return digest(path), tables


async def running(fault: str, make_fault: Callable[[Path], View | None], *, known_served: bool) -> Figures:
    """A running cache meets the fault; ``make_fault`` returns the view of a file that is not ours."""
    figures = Figures(fault)
    folder = Path(tempfile.mkdtemp(prefix="agentcache-figures-"))
    db = folder / "cache.db"
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            cache = AgentCache(f"sqlite:///{db}", l1_max_entries=0)
            async with cache:
                await fill(cache, 200)
                theirs = make_fault(db)
                acked = await degraded_run(cache, figures, 200 if known_served else 0)
            figures.warnings = sum(issubclass(w.category, AgentCacheWarning) for w in record)
        if theirs is not None:
            figures.theirs_written = view(db) != theirs
        figures.acked = len(acked)
        figures.lost = lost_of(db, cache, acked)
        if not known_served:
            figures.served = None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def delete(db: Path) -> None:  # returns no view: what is left is nobody's
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{db}{suffix}")


def rename_away(db: Path) -> None:
    os.rename(db, db.with_name("moved.db"))


def foreign_over(db: Path) -> View:
    theirs = db.with_name("theirs.db")
    conn = sqlite3.connect(theirs)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = view(theirs)
    os.rename(theirs, db)
    return before


def random_over(db: Path) -> View:
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.write(os.urandom(size))
    return view(db)


async def full_disk_running() -> Figures:
    figures = Figures("full disk, running process")
    with tmpfs("4m") as folder:
        db = folder / "cache.db"
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            cache = AgentCache(f"sqlite:///{db}", l1_max_entries=0)
            async with cache:
                await fill(cache, KNOWN)
                fill_up(folder)
                acked = await degraded_run(cache, figures, KNOWN)
            figures.warnings = sum(issubclass(w.category, AgentCacheWarning) for w in record)
        (folder / "filler").unlink()
        figures.acked = len(acked)
        figures.lost = lost_of(db, cache, acked)
    return figures


async def fresh(fault: str, size: str, make_fault: Callable[[Path], None]) -> Figures:
    figures = Figures(fault)
    with tmpfs(size) as folder:
        db = folder / "cache.db"
        url = f"sqlite:///{db}"
        async with AgentCache(url) as cache:
            await fill(cache, KNOWN)
        make_fault(folder)
        before = digest(db)
        got = run_fresh_process([sys.executable], url, KNOWN, 1000, store_retry=1.0)
        figures.served = (got["served"], got["known"])
        figures.stall = got["longest_stall"]
        figures.warnings = len(got["warnings"])
        figures.acked = len(got["acked"])
        figures.lost = 0 if not got["acked"] else None
        if digest(db) != before:
            figures.notes.append("the file changed")
    return figures


def remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


async def main() -> None:
    rows = [
        await running("no fault (reference)", lambda db: None, known_served=True),
        await running("deleted (db, -wal, -shm)", delete, known_served=False),
        await running("renamed away", rename_away, known_served=False),
        await running("another program's SQLite file renamed over it", foreign_over, known_served=False),
        await running("overwritten in place with random bytes", random_over, known_served=False),
    ]
    if os.geteuid() == 0:
        rows.append(await fresh("read-only mount, fresh process", "16m", remount_read_only))
        rows.append(await fresh("full disk, fresh process", "4m", fill_up))
        rows.append(await full_disk_running())
    else:
        print("(not root: the read-only and full-disk rows need tmpfs mounts)")
    print("| fault | acked lost | stored served while degraded | longest call | warnings | theirs written |")
    print("| --- | ---: | ---: | ---: | ---: | :---: |")
    for figures in rows:
        print(figures.row() + (f" {'; '.join(figures.notes)}" if figures.notes else ""))


if __name__ == "__main__":
    asyncio.run(main())
