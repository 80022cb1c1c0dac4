"""Store maintenance without a user interface: statistics, listing, key lookup and pruning.

Everything here works over the narrow ``Store`` protocol (scan, get_many, delete_many), so it works
on every store. What only some stores can do is an optional capability (``stores/capabilities.py``,
re-exported here): ``DiskUsage`` (bytes the store takes on disk) and ``Vacuumable`` (give freed space
back). The command line (``cli_app``) is a thin layer over these functions.

Sizes: ``entry_size`` counts what an entry holds (value, key material, metadata), which is what
``prune --max-size`` bounds. The file of a SQLite store only shrinks after ``vacuum``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .stores.base import Entry, Store, namespace_of
from .stores.capabilities import DiskUsage, Vacuumable

__all__ = [
    "DiskUsage",
    "EntryFilter",
    "PrunePlan",
    "StatsRow",
    "Summary",
    "Vacuumable",
    "delete_in_batches",
    "entry_size",
    "find_entry",
    "parse_age",
    "parse_size",
    "plan_prune",
    "resolve_keys",
    "scanning",
    "select",
    "summarize",
]

_FULL_KEY = re.compile(r"[^:]+:v\d+:[0-9a-f]{64}\Z")
MIN_PREFIX = 6  # a shorter hash prefix would match too much by accident


def entry_size(entry: Entry) -> int:
    """Bytes an entry holds: value, key material and metadata (approximately, for the metadata)."""
    material = len(entry.material.encode("utf-8")) if entry.material is not None else 0
    meta = sum(len(str(k)) + len(str(v)) for k, v in entry.meta.items())
    return len(entry.value) + material + meta


# -- parsing command-line quantities --------------------------------------------------------

_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}  # fmt: skip


def parse_age(text: str, now: float) -> float:
    """A timestamp from ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"2w"`` (ago) or an ISO date."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if match:
        return now - float(match.group(1)) * _AGE_UNITS[match.group(2)]
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"{text!r} is not an age (like 30m, 2h, 7d) or an ISO date (2026-11-27T12:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # a bare date means UTC, as shown by `ls`
    return when.timestamp()


def parse_size(text: str) -> int:
    """Bytes from ``"500"``, ``"64k"``, ``"100MB"``, ``"1GiB"`` (k/M/G are powers of 1000)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ConfigurationError(f"{text!r} is not a size (like 500k, 100MB, 1GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


# -- listing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Which entries a listing shows; ``None`` fields do not filter."""

    namespace: str | None = None
    model: str | None = None
    label: str | None = None
    created_before: float | None = None
    created_after: float | None = None
    min_hits: int | None = None
    max_hits: int | None = None

    def __call__(self, key: str, entry: Entry) -> bool:
        """True if the entry passes every filter that is set."""
        meta = entry.meta
        checks = (
            self.namespace is None or namespace_of(key) == self.namespace,
            self.model is None or meta.get("model") == self.model,
            self.label is None or meta.get("label") == self.label,
            self.created_before is None or entry.created_at < self.created_before,
            self.created_after is None or entry.created_at >= self.created_after,
            self.min_hits is None or entry.hits >= self.min_hits,
            self.max_hits is None or entry.hits <= self.max_hits,
        )
        return all(checks)


@asynccontextmanager
async def scanning(
    store: Store, namespace: str | None = None
) -> AsyncIterator[AsyncIterator[tuple[str, Entry]]]:
    """``store.scan(namespace)``, closed on leaving the block even if the loop stopped early.

    (An abandoned async generator would otherwise be finalised later, after the store closed.)
    """
    entries = store.scan(namespace)
    try:
        yield entries
    finally:
        aclose = getattr(entries, "aclose", None)
        if aclose is not None:
            await aclose()


async def select(store: Store, where: EntryFilter, limit: int = 0) -> list[tuple[str, Entry]]:
    """Up to ``limit`` (0: all) entries passing ``where``, newest first."""
    found: list[tuple[str, Entry]] = []
    async with scanning(store, where.namespace) as entries:
        async for key, entry in entries:
            if where(key, entry):
                found.append((key, entry))
                if limit and len(found) >= limit:
                    break
    return found


async def resolve_keys(store: Store, refs: Iterable[str]) -> dict[str, str]:
    """Map each reference (a full stored key, or a prefix of its hash) to one stored key.

    A prefix must be at least ``MIN_PREFIX`` characters and match exactly one entry, else
    ``ConfigurationError`` says which reference failed and why. Prefixes cost one scan.
    """
    return {ref: key for ref, (key, _entry) in (await _resolve(store, list(refs))).items()}


async def find_entry(store: Store, ref: str) -> tuple[str, Entry]:
    """The stored key and entry a reference names, with its key material where it was stored."""
    ((key, entry),) = (await _resolve(store, [ref])).values()
    if entry is None:
        (entry,) = await store.get_many([key], 0.0)  # 0.0: show expired entries too
        if entry is None:
            raise ConfigurationError(f"no entry {key}")
    if entry.material is None:  # some stores (SQLite) leave the material out of get_many
        async with scanning(store, namespace_of(key)) as entries:
            async for found_key, found in entries:
                if found_key == key:
                    return key, found
    return key, entry


async def _resolve(store: Store, refs: list[str]) -> dict[str, tuple[str, Entry | None]]:
    """ref -> (key, the entry if a scan found it anyway)."""
    resolved: dict[str, tuple[str, Entry | None]] = {}
    partial: list[str] = []
    for ref in refs:
        if _FULL_KEY.match(ref):
            resolved[ref] = (ref, None)
        elif len(ref.rsplit(":", 1)[-1]) < MIN_PREFIX:
            raise ConfigurationError(
                f"{ref!r} is too short to name an entry: give the full key or at least "
                f"{MIN_PREFIX} characters of its hash"
            )
        else:
            partial.append(ref)
    if not partial:
        return resolved
    matches: dict[str, list[tuple[str, Entry]]] = {ref: [] for ref in partial}
    async with scanning(store, None) as entries:
        async for key, entry in entries:
            digest = key.rsplit(":", 1)[-1]
            for ref in partial:
                if key.startswith(ref) or digest.startswith(ref):
                    matches[ref].append((key, entry))
    for ref, found in matches.items():
        if not found:
            raise ConfigurationError(f"no entry matches {ref!r}")
        if len(found) > 1:
            shown = ", ".join(key for key, _ in found[:5])
            raise ConfigurationError(f"{ref!r} is ambiguous: it matches {shown}")
        resolved[ref] = found[0]
    return resolved


# -- statistics ------------------------------------------------------------------------------


@dataclass(slots=True)
class StatsRow:
    """Totals over a group of entries. ``saved_*`` count what their recorded hits did not spend."""

    entries: int = 0
    expired: int = 0
    bytes: int = 0
    hits: int = 0
    saved_seconds: float = 0.0
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    saved_cost: float = 0.0

    def add(self, entry: Entry, now: float) -> None:
        """Count one entry and its recorded hits."""
        self.entries += 1
        self.expired += entry.is_expired(now)
        self.bytes += entry_size(entry)
        self.hits += entry.hits
        self.saved_seconds += entry.hits * entry.call_seconds
        self.saved_input_tokens += entry.hits * _int(entry.meta.get("input_tokens"))
        self.saved_output_tokens += entry.hits * _int(entry.meta.get("output_tokens"))
        self.saved_cost += entry.hits * _float(entry.meta.get("cost"))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; ``saved_calls`` equals the recorded hits."""
        return {
            "entries": self.entries,
            "expired": self.expired,
            "bytes": self.bytes,
            "hits": self.hits,
            "saved_calls": self.hits,
            "saved_seconds": round(self.saved_seconds, 6),
            "saved_input_tokens": self.saved_input_tokens,
            "saved_output_tokens": self.saved_output_tokens,
            "saved_cost": round(self.saved_cost, 6),
        }


@dataclass(slots=True)
class Summary:
    """Totals overall and per namespace, model and label."""

    total: StatsRow = field(default_factory=StatsRow)
    by: dict[str, dict[str, StatsRow]] = field(
        default_factory=lambda: {"namespace": {}, "model": {}, "label": {}}
    )


async def summarize(store: Store, *, now: float, since: float | None = None) -> Summary:
    """Scan the store once and total its entries (``since``: only entries recorded since then)."""
    summary = Summary()
    async for key, entry in store.scan(None):
        if since is not None and entry.created_at < since:
            continue
        summary.total.add(entry, now)
        groups = {
            "namespace": namespace_of(key),
            "model": str(entry.meta.get("model") or "-"),
            "label": str(entry.meta.get("label") or "-"),
        }
        for dimension, name in groups.items():
            summary.by[dimension].setdefault(name, StatsRow()).add(entry, now)
    return summary


# -- pruning ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """The keys ``prune`` would delete, by reason, and the bytes that remain."""

    expired: list[str]
    old: list[str]
    evicted: list[str]
    kept_bytes: int

    @property
    def keys(self) -> list[str]:
        """Every key to delete."""
        return [*self.expired, *self.old, *self.evicted]


async def plan_prune(
    store: Store,
    *,
    now: float,
    namespace: str | None = None,
    older_than: float | None = None,
    max_size: int | None = None,
) -> PrunePlan:
    """Choose what to delete: expired entries, entries created before ``older_than``, then the
    least recently hit until at most ``max_size`` bytes remain (never-hit entries first, oldest
    first: an answer nobody asked for twice is the cheapest to lose)."""
    expired: list[str] = []
    old: list[str] = []
    kept: list[tuple[float, float, str, int]] = []  # (last hit, created, key, size)
    async for key, entry in store.scan(namespace):
        if entry.is_expired(now):
            expired.append(key)
        elif older_than is not None and entry.created_at < older_than:
            old.append(key)
        else:
            kept.append((entry.last_hit_at or 0.0, entry.created_at, key, entry_size(entry)))
    kept_bytes = sum(item[3] for item in kept)
    evicted: list[str] = []
    if max_size is not None and kept_bytes > max_size:
        kept.sort()
        for _last_hit, _created, key, size in kept:
            if kept_bytes <= max_size:
                break
            evicted.append(key)
            kept_bytes -= size
    return PrunePlan(expired, old, evicted, kept_bytes)


async def delete_in_batches(
    store: Store,
    keys: list[str],
    *,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete ``keys`` a batch at a time, reporting each batch to ``progress``; return how many."""
    deleted = 0
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        deleted += await store.delete_many(chunk)
        if progress is not None:
            progress(len(chunk))
    return deleted


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return 0.0
