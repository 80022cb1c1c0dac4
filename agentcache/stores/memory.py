"""``memory://``: a bounded LRU of entries in this process; also the L1 in front of persistent stores.

Its synchronous ``lookup``/``put`` are what make an L1 hit cheap (no await, no thread hop); the async
Store methods wrap them. ``lookup`` also hands back a ``memo``: the cache keeps the decoded value of
an immutable answer (a str, typically) there so a hit need not decode it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import SplitResult

from ..errors import ConfigurationError
from ..keys import validate_namespace
from .base import Entry, namespace_of
from .capabilities import Lease

__all__ = ["Memo", "MemoryStore"]

Memo = tuple[Any, Any]
"""``(value_type, decoded value)`` of an entry whose decoded value callers may share; ``None``: none kept."""

DEFAULT_MAX_ENTRIES = 10_000


class MemoryStore:
    """A bounded least-recently-used map of stored key -> Entry."""

    __slots__ = ("_data", "_hits", "max_entries", "url")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be a positive int, not {max_entries!r}")
        self.max_entries = max_entries
        self.url = f"memory://?max_entries={max_entries}"
        # Who touches it: only the event loop's thread; the tuple is (entry, memo).
        self._data: OrderedDict[str, tuple[Entry, Memo | None]] = OrderedDict()
        # Hits counted since the entry was stored: key -> [count, last_hit_at]. Kept apart from the
        # frozen Entry because rebuilding an Entry on every hit costs more than the hit itself;
        # applied when entries are read out (get_many, scan). Holds only keys present in _data.
        self._hits: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._data)}/{self.max_entries} entries)"

    # -- synchronous fast path (used as L1) -------------------------------------------------

    def lookup(self, key: str, now: float) -> tuple[Entry, Memo | None] | None:
        """The live (entry, memo) of ``key``, refreshed as most recently used; drops it if expired."""
        slot = self._data.get(key)
        if slot is None:
            return None
        expires_at = slot[0].expires_at
        if expires_at is not None and now >= expires_at:
            del self._data[key]
            self._hits.pop(key, None)
            return None
        self._data.move_to_end(key)
        return slot

    def put(self, key: str, entry: Entry, memo: Memo | None = None) -> None:
        """Insert or replace, evicting the least recently used entries beyond the bound."""
        data = self._data
        previous = data.get(key)
        data[key] = (entry, memo)
        data.move_to_end(key)
        if previous is None or previous[0] is not entry:
            self._hits.pop(key, None)  # a new entry starts from its own count (not a new memo)
        while len(data) > self.max_entries:
            self._hits.pop(data.popitem(last=False)[0], None)

    def discard(self, key: str) -> bool:
        """Remove ``key`` if present."""
        self._hits.pop(key, None)
        return self._data.pop(key, None) is not None

    def discard_namespace(self, namespace: str | None) -> int:
        """Remove every entry of ``namespace`` (``None``: all)."""
        if namespace is None:
            count = len(self._data)
            self._data.clear()
            self._hits.clear()
            return count
        doomed = [k for k in self._data if namespace_of(k) == namespace]
        for key in doomed:
            del self._data[key]
            self._hits.pop(key, None)
        return len(doomed)

    # -- the Store protocol ------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to open."""

    async def aclose(self) -> None:
        """Nothing to release; entries stay until the object is dropped."""

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        """The live entries of ``keys``."""
        out: list[Entry | None] = []
        for key in keys:
            slot = self.lookup(key, now)
            out.append(None if slot is None else self._counted(key, slot[0]))
        return out

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        """Insert or replace entries (``memory://`` has no leases: ``release`` is ignored)."""
        for key, entry in items:
            self.put(key, entry)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete entries; return how many existed."""
        return sum(self.discard(key) for key in keys)

    async def clear(self, namespace: str | None) -> int:
        """Delete every entry of ``namespace`` (``None``: all); refuses a bad namespace."""
        if namespace is not None:
            validate_namespace(namespace)
        return self.discard_namespace(namespace)

    def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        """Entries newest first (a snapshot, so the caller may modify the store meanwhile)."""
        if namespace is not None:
            validate_namespace(namespace)  # here, not at the first iteration
        return self._scan(namespace)

    async def _scan(self, namespace: str | None) -> AsyncIterator[tuple[str, Entry]]:
        snapshot = sorted(self._data.items(), key=lambda kv: kv[1][0].created_at, reverse=True)
        for key, (entry, _memo) in snapshot:
            if namespace is None or namespace_of(key) == namespace:
                yield key, self._counted(key, entry)

    def note_hit(self, key: str, now: float) -> None:
        """Count a hit; the entry shows it when read out."""
        counted = self._hits.get(key)
        if counted is not None:
            counted[0] += 1
            counted[1] = now
        elif key in self._data:
            self._hits[key] = [1, now]

    def _counted(self, key: str, entry: Entry) -> Entry:
        """``entry`` with the hits counted since it was stored."""
        counted = self._hits.get(key)
        if counted is None:
            return entry
        return replace(entry, hits=entry.hits + int(counted[0]), last_hit_at=counted[1])


def from_url(parts: SplitResult) -> MemoryStore:
    """``memory://[?max_entries=N]``."""
    from . import query_options

    options = query_options(parts, {"max_entries": int})
    return MemoryStore(**options)  # type: ignore[arg-type]
