"""CacheStats: what the cache served, called and saved; overall and per label (sub-agent).

Every ``get_or_call`` counts exactly once as a ``hit`` (served from L1 or the store), a ``miss``
(this caller's own upstream call) or ``coalesced`` (it shared another caller's upstream call).
``saved_*`` figures add up what was served without calling: the stored call duration, and the
tokens and cost recorded with the entry when they are known (the pydantic-ai integration records
them).

Entry metadata comes from ``describe()`` and from imported files, so it may hold anything. Only
numbers count: ``input_tokens``/``output_tokens`` as a whole number (an ``int``, or a numpy
integer) in ``0 .. 2**63 - 1``, and ``cost`` as a finite number (``float``, ``int``, ``Decimal``,
numpy) in ``0 .. 1e15``. Anything else counts as 0: ``"n/a"``, ``None``, ``[1]``, ``True``, NaN,
a float token count, a negative or absurdly large figure, and numeric strings too (a string is
what a free-text or unparsed field looks like; parsing it would guess). A hit never fails over
its metadata.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, SupportsFloat, SupportsIndex

__all__ = ["CacheStats", "StatsRecorder"]

_NO_LABELS: Mapping[str, CacheStats] = MappingProxyType({})

_MAX_TOKENS = 2**63 - 1  # what an int64 column or a JSON reader elsewhere still holds
_MAX_COST = 1e15  # beyond any bill: a figure this size is a unit mix-up, not a saving


def _tokens(value: object) -> int:
    """A token count as recorded, or 0 when it is not a whole number in range."""
    if type(value) is int:  # the usual case: one type check
        count = value
    elif isinstance(value, SupportsIndex) and not isinstance(value, bool):
        try:
            count = operator.index(value)  # an int subclass or a numpy integer; never a float or str
        except Exception:  # somebody's __index__ failing must not fail a hit
            return 0
    else:
        return 0
    return count if 0 <= count <= _MAX_TOKENS else 0


def _cost(value: object) -> float:
    """A cost as recorded, or 0.0 when it is not a finite number in range."""
    if type(value) is float:  # the usual case: one type check
        amount = value
    elif isinstance(value, SupportsFloat) and not isinstance(value, bool):  # int, Decimal, numpy; no str
        try:
            amount = float(value)
        except Exception:  # an int beyond any float, a signalling NaN, somebody's failing __float__
            return 0.0
    else:
        return 0.0
    return amount if 0.0 <= amount <= _MAX_COST else 0.0  # NaN fails both comparisons


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
            self.add_usage(meta)

    def add_usage(self, meta: Mapping[str, Any]) -> None:
        """Add the entry's recorded usage; what is missing or not a sane number counts as 0."""
        # Each figure is tested inline for its usual type first: this runs on every hit.
        get = meta.get
        tokens = get("input_tokens")
        if tokens is not None:
            if type(tokens) is int and 0 <= tokens <= _MAX_TOKENS:
                self.saved_input_tokens += tokens
            else:
                self.saved_input_tokens += _tokens(tokens)
        tokens = get("output_tokens")
        if tokens is not None:
            if type(tokens) is int and 0 <= tokens <= _MAX_TOKENS:
                self.saved_output_tokens += tokens
            else:
                self.saved_output_tokens += _tokens(tokens)
        cost = get("cost")
        if cost is not None:
            if type(cost) is float and 0.0 <= cost <= _MAX_COST:
                self.saved_cost += cost
            else:
                self.saved_cost += _cost(cost)

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
            total.add_usage(meta)
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
            total.add_usage(meta)
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
