"""The Store protocol every backend implements, and the Entry record it keeps per key.

A store is deliberately narrow: bytes in, bytes out, one record per key, per-entry expiry, plus the
batching and scanning that performance and the CLI need. Timeouts, fail-open, single-flight and
statistics live in the cache layer above, once, not in every store.

Stores translate their driver's errors at one boundary into ``BackendError`` /
``BackendUnavailableError`` (``raise ... from exc``). Optional abilities (leases, a fingerprint
index, disk usage, vacuum) are declared in ``capabilities.py``. Keys are the cache's stored keys,
``"<namespace>:v1:<sha256 hex>"``; ``namespace_of`` recovers the namespace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .capabilities import Lease

__all__ = ["Entry", "Store", "namespace_of"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored answer and what is known about it.

    ``meta`` holds small JSON facts: ``label``, ``model``, ``input_tokens``, ``output_tokens``,
    ``cost`` where known. ``material`` is the canonical key-material JSON (``None`` when the user
    opted out of storing it, e.g. for private prompts). ``hits``/``last_hit_at`` are bookkeeping
    that stores update in batches; they may lag a little behind reality.
    """

    value: bytes
    created_at: float
    expires_at: float | None = None
    call_seconds: float = 0.0
    material: str | None = None
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    hits: int = 0
    last_hit_at: float | None = None

    def is_expired(self, now: float) -> bool:
        """True once ``now`` has reached the entry's expiry."""
        return self.expires_at is not None and now >= self.expires_at


def namespace_of(key: str) -> str:
    """The namespace part of a stored key (namespaces never contain ``:``)."""
    return key.split(":", 1)[0]


@runtime_checkable
class Store(Protocol):
    """What the cache needs from a backend. All methods may raise ``BackendError``."""

    url: str
    """The store's URL with any password redacted (safe for logs and ``repr``)."""

    async def open(self) -> None:
        """Connect / create on first use; idempotent. Raises ``BackendUnavailableError``."""

    async def aclose(self) -> None:
        """Flush pending bookkeeping and release connections; idempotent."""

    async def get_many(self, keys: Sequence[str], now: float) -> list[Entry | None]:
        """The entries of ``keys`` in order; ``None`` for missing or expired (at ``now``) ones."""

    async def set_many(self, items: Sequence[tuple[str, Entry]], *, release: Lease | None = None) -> None:
        """Insert or replace entries; durable (committed) when it returns.

        ``release``: a lease the caller holds on one of the keys; a store with leases releases it
        in the same commit and sets ``release.released`` (``capabilities.py``); others ignore it.
        """

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete entries; return how many existed."""

    async def clear(self, namespace: str | None) -> int:
        """Delete every entry of ``namespace`` (``None``: all namespaces); return how many."""

    def scan(self, namespace: str | None = None) -> AsyncIterator[tuple[str, Entry]]:
        """Iterate over stored (key, entry) pairs, expired ones included, newest first."""

    def note_hit(self, key: str, now: float) -> None:
        """Record a hit for bookkeeping; stores batch these, never a write per hit."""
