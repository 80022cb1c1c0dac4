"""Validation of the user's options: modes, TTLs, the store-error policy, environment defaults.

Every bad value becomes a ``ConfigurationError`` that names the value and what to pass instead,
and, when the value came from the environment, the variable it came from (``$AGENTCACHE_URL``,
``$AGENTCACHE_MODE``): the code that failed may not mention it anywhere.
"""

from __future__ import annotations

import enum
import math
import os
from datetime import timedelta
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = [
    "MAX_TTL",
    "Mode",
    "OnStoreError",
    "parse_mode",
    "parse_on_store_error",
    "parse_ttl",
    "resolve_url",
    "store_from_setting",
]

ENV_URL = "AGENTCACHE_URL"
ENV_MODE = "AGENTCACHE_MODE"


class Mode(str, enum.Enum):
    """What a cache does on a hit and on a miss (README: Modes)."""

    READ_WRITE = "read_write"  # hit served; miss calls and stores
    READ_ONLY = "read_only"  # hit served; miss calls, stores nothing
    REPLAY = "replay"  # hit served; miss raises CacheMissError without calling
    REFRESH = "refresh"  # never served; every call re-records
    OFF = "off"  # bypassed entirely

    @property
    def writes(self) -> bool:
        """Whether misses are stored in this mode."""
        return self in (Mode.READ_WRITE, Mode.REFRESH)


class OnStoreError(str, enum.Enum):
    """What a store failure does: fail open (warn, count, call through) or raise."""

    WARN = "warn"
    RAISE = "raise"


def parse_mode(mode: Mode | str | None) -> Mode:
    """``mode`` if given, else ``$AGENTCACHE_MODE``, else ``read_write``."""
    source = "mode"
    if mode is None:
        mode, source = os.environ.get(ENV_MODE) or Mode.READ_WRITE, f"${ENV_MODE}"
    try:
        return Mode(mode.lower() if isinstance(mode, str) and not isinstance(mode, Mode) else mode)
    except ValueError:
        known = ", ".join(repr(m.value) for m in Mode)
        raise ConfigurationError(f"unknown {source} {mode!r}; use one of {known}") from None


def parse_on_store_error(policy: OnStoreError | str) -> OnStoreError:
    """``"warn"`` (fail open, the default) or ``"raise"``."""
    try:
        return OnStoreError(policy)
    except ValueError:
        raise ConfigurationError(
            f"unknown on_store_error {policy!r}; use 'warn' (fail open) or 'raise'"
        ) from None


MAX_TTL = 100 * 365.25 * 86400.0
"""The longest ttl (seconds, 100 years): every store can keep an entry that long (a Redis expiry
past ~290,000 years is refused by the server, a date past the year 9999 by ``datetime``)."""


def parse_ttl(ttl: float | timedelta | None, name: str = "ttl") -> float | None:
    """Seconds as a positive finite float up to ``MAX_TTL``, or ``None`` (never expires).

    The one check of every ttl (the cache's, a call's, ``set``'s, a decorator's), at configuration
    time, the same whatever the store: a ttl one store could not keep would fail only there, and
    only when the first answer is stored.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise ConfigurationError(
            f"{name} must be seconds (a number) or a timedelta, not {type(ttl).__qualname__}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"{name} must be a positive, finite number of seconds, not {ttl!r}; "
            "use None for entries that never expire"
        )
    if seconds > MAX_TTL:
        raise ConfigurationError(
            f"{name} must be at most {MAX_TTL:.0f} seconds (100 years), not {ttl!r}; "
            "use None for entries that never expire"
        )
    return seconds


def resolve_url(url: str | None) -> str:
    """``url`` if given, else ``$AGENTCACHE_URL``, else the SQLite default."""
    from .stores import DEFAULT_URL

    if url is not None:
        return url
    return os.environ.get(ENV_URL) or DEFAULT_URL


def store_from_setting(url: str | Store | None) -> Store:
    """The store of ``AgentCache(url)``: a ``Store`` as given, else the one ``resolve_url`` names.

    The store is built, not opened. A URL that cannot name a store raises ``ConfigurationError``;
    when it came from ``$AGENTCACHE_URL`` the message says so.
    """
    from .stores import Store, open_store, redact_url

    if url is not None and not isinstance(url, str):
        if isinstance(url, Store):
            return url
        raise ConfigurationError(f"url must be a store URL or a Store, not {url!r}")
    resolved = resolve_url(url)
    try:
        return open_store(resolved)
    except ConfigurationError as exc:
        if url is not None or not os.environ.get(ENV_URL):
            raise
        raise ConfigurationError(
            f"${ENV_URL}={redact_url(resolved)!r} names no store: {exc} "
            f"(fix ${ENV_URL}, or unset it for the default)"
        ) from exc
