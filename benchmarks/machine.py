"""What a benchmark ran on: date, machine, interpreter and package versions, for the report header."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

__all__ = ["describe", "versions"]

PACKAGES = (
    "agentcache",
    "aiosqlite",
    "diskcache",
    "aiocache",
    "cashews",
    "async-lru",
    "langchain-community",
    "langchain-core",
    "SQLAlchemy",
    "matplotlib",
)


def versions(packages: tuple[str, ...] = PACKAGES) -> str:
    """``name version`` for each installed package, comma separated."""
    found = []
    for name in packages:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
        return f"{kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def _commit() -> str:
    """The git commit the benchmark ran on, when run from a checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def describe() -> list[str]:
    """Markdown lines: when, where, with what."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"_Run {now}_ on {os.cpu_count()} cores ({_cpu()}), {_memory()}, "
        f"{platform.system()} {platform.release()}; Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}, default asyncio event loop.",
        "",
        f"Versions: {versions()}; agentcache at commit {_commit()}.",
    ]
