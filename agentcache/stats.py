"""CacheStats: what the cache served, called and saved; overall and per label (sub-agent).

Every ``get_or_call`` counts exactly once as a ``hit`` (served from L1 or the store), a ``miss``
(this caller's own upstream call) or ``coalesced`` (it shared another caller's upstream call).
``saved_*`` figures add up what was served without calling: the stored call duration, and the
tokens and cost recorded with the entry when they are known (the pydantic-ai integration records
them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

__all__ = ["CacheStats", "StatsRecorder"]

_NO_LABELS: Mapping[str, CacheStats] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters (``cache.stats`` builds a new one on each access)."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    stores: int = 0
    errors: int = 0
    saved_seconds: float = 0.0
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    saved_cost: float = 0.0
    by_label: Mapping[str, CacheStats] = field(default_factory=lambda: _NO_LABELS)

    @property
    def lookups(self) -> int:
        """Every counted ``get_or_call``: hits + misses + coalesced."""
        return self.hits + self.misses + self.coalesced

    @property
    def saved_calls(self) -> int:
        """Upstream calls nobody paid for: hits + coalesced."""
        return self.hits + self.coalesced

    @property
    def hit_rate(self) -> float:
        """The share of lookups that made no upstream call of their own (0.0 with no lookups)."""
        total = self.lookups
        return self.saved_calls / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON, logs and tables), derived figures included."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["by_label"] = {name: s.as_dict() for name, s in self.by_label.items()}
        out.update(lookups=self.lookups, saved_calls=self.saved_calls, hit_rate=self.hit_rate)
        return out


class _Counters:
    __slots__ = (
        "coalesced",
        "errors",
        "hits",
        "misses",
        "saved_cost",
        "saved_input_tokens",
        "saved_output_tokens",
        "saved_seconds",
        "stores",
    )

    def __init__(self) -> None:
        self.hits = self.misses = self.coalesced = self.stores = self.errors = 0
        self.saved_input_tokens = self.saved_output_tokens = 0
        self.saved_seconds = self.saved_cost = 0.0

    def add_saved(self, seconds: float, meta: Mapping[str, Any]) -> None:
        self.saved_seconds += seconds
        if meta:
            self.saved_input_tokens += int(meta.get("input_tokens") or 0)
            self.saved_output_tokens += int(meta.get("output_tokens") or 0)
            self.saved_cost += float(meta.get("cost") or 0.0)

    def snapshot(self, by_label: Mapping[str, CacheStats] = _NO_LABELS) -> CacheStats:
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            coalesced=self.coalesced,
            stores=self.stores,
            errors=self.errors,
            saved_seconds=self.saved_seconds,
            saved_input_tokens=self.saved_input_tokens,
            saved_output_tokens=self.saved_output_tokens,
            saved_cost=self.saved_cost,
            by_label=by_label,
        )


class StatsRecorder:
    """The mutable counters behind ``cache.stats``; cheap enough to call on every hit."""

    __slots__ = ("_labels", "_total")

    def __init__(self) -> None:
        self._total = _Counters()
        self._labels: dict[str, _Counters] = {}

    def _for(self, label: str | None) -> tuple[_Counters, ...]:
        if label is None:
            return (self._total,)
        per_label = self._labels.get(label)
        if per_label is None:
            per_label = self._labels[label] = _Counters()
        return (self._total, per_label)

    def hit(self, call_seconds: float, meta: Mapping[str, Any], label: str | None = None) -> None:
        """A lookup served from L1 or the store (on the hot path: no loop for the common case)."""
        total = self._total
        total.hits += 1
        total.saved_seconds += call_seconds
        if meta:
            total.add_saved(0.0, meta)
        if label is not None:
            per_label = self._for(label)[1]
            per_label.hits += 1
            per_label.add_saved(call_seconds, meta)

    def coalesced(self, call_seconds: float, meta: Mapping[str, Any], label: str | None = None) -> None:
        """A lookup that shared another caller's upstream call."""
        total = self._total
        total.coalesced += 1
        total.saved_seconds += call_seconds
        if meta:
            total.add_saved(0.0, meta)
        if label is not None:
            per_label = self._for(label)[1]
            per_label.coalesced += 1
            per_label.add_saved(call_seconds, meta)

    def miss(self, label: str | None = None) -> None:
        """A lookup that made its own upstream call."""
        for c in self._for(label):
            c.misses += 1

    def stored(self, label: str | None = None) -> None:
        """An entry written to the store."""
        for c in self._for(label):
            c.stores += 1

    def error(self, label: str | None = None) -> None:
        """A store failure survived, or a value that could not be stored."""
        for c in self._for(label):
            c.errors += 1

    def snapshot(self) -> CacheStats:
        """A frozen copy of every counter."""
        labels = {name: c.snapshot() for name, c in sorted(self._labels.items())}
        return self._total.snapshot(MappingProxyType(labels) if labels else _NO_LABELS)

    def reset(self) -> None:
        """Start counting from zero."""
        self._total = _Counters()
        self._labels = {}
