"""``redis://`` and ``rediss://``: entries and leases in a Redis (or Valkey) server, via redis-py.

The parts, each with one job: ``_store.py`` (the Store protocol, key layout, scans, hit
bookkeeping), ``_connection.py`` (the client for the running event loop and the one error
boundary), ``_envelope.py`` (an entry's bytes), ``_leases.py`` (cross-process leases).
Importing this package needs the ``redis`` extra; ``import agentcache`` never imports it.
"""

from __future__ import annotations

try:
    import redis.asyncio  # noqa: F401 - fails here, clearly, when the extra is missing
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('redis:// stores need an optional dependency: pip install "agentcache[redis]"') from exc

from ._connection import DEFAULT_TIMEOUT
from ._leases import RedisLeases
from ._store import DEFAULT_PREFIX, RedisStore, from_url

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "RedisLeases", "RedisStore", "from_url"]
