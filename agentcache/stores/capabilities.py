"""The optional abilities a store may have beyond the ``Store`` protocol, listed in one place.

The cache and the ``agentcache`` command ask for an ability through the functions here, never by
probing attributes: a store declares an ability by implementing its protocol in full.

| ability | protocol | who uses it | memory | sqlite | redis |
| --- | --- | --- | :-: | :-: | :-: |
| cross-process leases | ``HasLeases`` -> ``LeaseStore`` | ``leasing.run_leased`` on a miss | | yes | yes |
| open without creating | ``OpensExisting`` | replay mode (replay never writes) | | yes | |
| fingerprint index | ``FingerprintIndex`` | ``explain`` (near misses by index) | | yes | |
| disk usage | ``DiskUsage`` | ``agentcache stats``, ``prune --max-size`` | | yes | |
| vacuum | ``Vacuumable`` | ``agentcache vacuum`` | | yes | |
| one server for all | ``Reachability`` | the guard: a write that cannot reach it rests reads too | | | yes |

A lease is released in the very commit that stores its value: the holder passes its ``Lease`` to
``Store.set_many(items, release=lease)``, and a store with leases deletes the claim in the same
transaction (SQLite) or MULTI/EXEC (Redis), then sets ``lease.released`` and wakes its waiters. A
store without leases ignores ``release``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

if TYPE_CHECKING:
    from ..errors import BackendError
    from .base import Entry

__all__ = [
    "DiskUsage",
    "FingerprintIndex",
    "HasLeases",
    "Lease",
    "LeaseStore",
    "OpensExisting",
    "Reachability",
    "Vacuumable",
    "disk_usage_of",
    "fingerprint_index_of",
    "leases_of",
    "opens_existing",
    "reachability_of",
    "release_keys",
    "vacuumable",
]


@final
class Lease:
    """A lease one caller holds on one stored key while it calls upstream.

    ``released`` is set by whoever let the lease go: the store, when it released the lease in the
    commit of the key's value, or the holder itself.
    """

    __slots__ = ("key", "released", "token")

    def __init__(self, key: str, token: str) -> None:
        self.key = key
        self.token = token
        self.released = False

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"Lease({self.key!r}, {state})"


@runtime_checkable
class LeaseStore(Protocol):
    """A store's leases on keys (cross-process single-flight). All methods may raise ``BackendError``."""

    async def claim(self, key: str, token: str, ttl: float) -> bool:
        """Take the lease on ``key`` for ``ttl`` seconds under ``token``; ``False`` if held elsewhere.

        Cancellation-safe: if the caller is cancelled while the claim is on its way and the claim
        then wins, the store releases it once it lands (nobody holds it, nobody may wait for it).
        """

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Extend a lease we hold; ``False`` if it was lost (expired, and perhaps claimed again)."""

    async def release(self, key: str, token: str) -> None:
        """Give the lease back (a no-op if ``token`` no longer holds it) and wake the key's waiters."""

    async def wait_released(self, key: str, timeout: float) -> None:
        """Return when ``key``'s lease may have been released, or after ``timeout`` at the latest."""

    async def settle(self) -> None:
        """Return once no claim or release made on this loop is still on its way (before closing)."""


@runtime_checkable
class HasLeases(Protocol):
    """A store that offers leases on its keys."""

    def leases(self) -> LeaseStore:
        """The store's leases (one object per store)."""


@runtime_checkable
class OpensExisting(Protocol):
    """A store that can be opened for reading without creating anything (replay mode)."""

    async def open_existing(self) -> None:
        """Connect without creating files or schema; ``StoreMissingError`` if there is nothing."""


@runtime_checkable
class FingerprintIndex(Protocol):
    """A store that finds entries by a fingerprint in their metadata without a scan (explain)."""

    async def find_related(
        self, namespace: str, facet: str, fingerprint: str, limit: int
    ) -> list[tuple[str, Entry]]:
        """Up to ``limit`` entries of ``namespace`` whose ``meta[facet]`` is ``fingerprint``, newest first."""


@runtime_checkable
class DiskUsage(Protocol):
    """A store that can tell the bytes it takes on disk."""

    async def disk_usage(self) -> int:
        """Bytes used on disk, including journals."""


@runtime_checkable
class Vacuumable(Protocol):
    """A store that can give the space of deleted entries back to the file system."""

    async def vacuum(self) -> None:
        """Compact the store."""


@runtime_checkable
class Reachability(Protocol):
    """A store whose reads and writes all go to one server: when a write cannot reach it, nor can a read.

    (A SQLite file that refuses writes, full or read-only, still serves reads: no such store.)
    """

    def unreachable(self, exc: BackendError) -> bool:
        """True if ``exc`` says the server cannot be reached (down, paused, partitioned, timed out)."""


def leases_of(store: object) -> LeaseStore | None:
    """The store's leases, or ``None`` for a store without them (``memory://``)."""
    return store.leases() if isinstance(store, HasLeases) else None


def opens_existing(store: object) -> OpensExisting | None:
    """The store, if it can be opened without creating anything."""
    return store if isinstance(store, OpensExisting) else None


def fingerprint_index_of(store: object) -> FingerprintIndex | None:
    """The store, if it has a fingerprint index."""
    return store if isinstance(store, FingerprintIndex) else None


def disk_usage_of(store: object) -> DiskUsage | None:
    """The store, if it can tell its size on disk."""
    return store if isinstance(store, DiskUsage) else None


def vacuumable(store: object) -> Vacuumable | None:
    """The store, if it can be vacuumed."""
    return store if isinstance(store, Vacuumable) else None


def reachability_of(store: object) -> Reachability | None:
    """The store, if a failure to reach it fails every operation alike."""
    return store if isinstance(store, Reachability) else None


def release_keys(release: Lease | None, keys: Sequence[str]) -> Lease | None:
    """``release`` if it is an unreleased lease on one of ``keys`` (what a store releases with them)."""
    if release is None or release.released or release.key not in keys:
        return None
    return release
