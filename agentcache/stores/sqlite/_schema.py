"""The tables of an agentcache SQLite file, every statement run on them, and rows <-> ``Entry``.

``entries`` holds one row per stored key; ``agentcache_meta`` the schema version; ``claims`` the
leases (created on first use, so files made before leases existed gain it too). The indexes on
``meta`` fingerprints serve ``explain`` (``RELATED``); each query repeats its index's expression
exactly, and the ``json_valid`` guard keeps a damaged ``meta`` from failing writes (an index
expression runs on every write).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from ..base import Entry, namespace_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_KEYS_PER_STATEMENT = 500  # bound parameters of one statement: well under SQLite's limit

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS agentcache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS entries (
        key          TEXT PRIMARY KEY,
        namespace    TEXT NOT NULL,
        value        BLOB NOT NULL,
        created_at   REAL NOT NULL,
        expires_at   REAL,
        call_seconds REAL NOT NULL DEFAULT 0,
        size         INTEGER NOT NULL,
        material     TEXT,
        meta         TEXT,
        hits         INTEGER NOT NULL DEFAULT 0,
        last_hit_at  REAL
    )""",
    "CREATE INDEX IF NOT EXISTS entries_by_namespace ON entries (namespace, created_at)",
    "CREATE INDEX IF NOT EXISTS entries_by_family ON entries (namespace, "
    "CASE WHEN json_valid(meta) THEN json_extract(meta, '$.family') END, created_at)",
    "CREATE INDEX IF NOT EXISTS entries_by_conversation ON entries (namespace, "
    "CASE WHEN json_valid(meta) THEN json_extract(meta, '$.conversation') END, created_at)",
)
RECORD_VERSION = "INSERT OR IGNORE INTO agentcache_meta (name, value) VALUES ('schema_version', ?)"
TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
VERSION = "SELECT value FROM agentcache_meta WHERE name = 'schema_version'"

# -- entries ---------------------------------------------------------------------------------------

_COLUMNS = "key, value, created_at, expires_at, call_seconds, meta, hits, last_hit_at"
SELECT_KEYS = f"SELECT {_COLUMNS} FROM entries WHERE key IN ({{}})"  # {}: one ? per key
UPSERT = (
    "INSERT OR REPLACE INTO entries (key, namespace, value, created_at, expires_at, "
    "call_seconds, size, material, meta, hits, last_hit_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
DELETE_KEYS = "DELETE FROM entries WHERE key IN ({})"
DELETE_ALL = "DELETE FROM entries"
DELETE_NAMESPACE = "DELETE FROM entries WHERE namespace = ?"
NOTE_HITS = "UPDATE entries SET hits = hits + ?, last_hit_at = max(coalesce(last_hit_at, 0), ?) WHERE key = ?"
SCAN_ALL = f"SELECT {_COLUMNS}, material FROM entries ORDER BY created_at DESC, key DESC"
SCAN_NAMESPACE = (
    f"SELECT {_COLUMNS}, material FROM entries WHERE namespace = ? ORDER BY created_at DESC, key DESC"
)
RELATED = {
    "conversation": f"SELECT {_COLUMNS}, material FROM entries WHERE namespace = ? AND CASE WHEN "
    "json_valid(meta) THEN json_extract(meta, '$.conversation') END = ? ORDER BY created_at DESC LIMIT ?",
    "family": f"SELECT {_COLUMNS}, material FROM entries WHERE namespace = ? AND CASE WHEN "
    "json_valid(meta) THEN json_extract(meta, '$.family') END = ? ORDER BY created_at DESC LIMIT ?",
}
"""One statement per fingerprint of ``explain``, each served by its index (never a table scan)."""

# -- leases ----------------------------------------------------------------------------------------

CLAIMS_TABLE = (
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL)"
)
CLAIM = (
    "INSERT INTO claims (key, token, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
    "SET token = excluded.token, expires_at = excluded.expires_at WHERE claims.expires_at <= ?"
)
CLAIM_OWNERS = "SELECT key, token FROM claims WHERE key IN ({})"
CLAIM_EXPIRY = "SELECT expires_at FROM claims WHERE key = ?"
RENEW = "UPDATE claims SET expires_at = ? WHERE key = ? AND token = ?"
RELEASE = "DELETE FROM claims WHERE key = ? AND token = ?"


def chunks(keys: Sequence[str]) -> list[Sequence[str]]:
    """``keys`` in pieces small enough for one statement each."""
    return [keys[i : i + MAX_KEYS_PER_STATEMENT] for i in range(0, len(keys), MAX_KEYS_PER_STATEMENT)]


def entry_row(key: str, entry: Entry) -> tuple[Any, ...]:
    """The ``UPSERT`` parameters of one entry."""
    return (
        key,
        namespace_of(key),
        entry.value,
        entry.created_at,
        entry.expires_at,
        entry.call_seconds,
        len(entry.value),
        entry.material,
        json.dumps(dict(entry.meta), separators=(",", ":")) if entry.meta else None,
        entry.hits,
        entry.last_hit_at,
    )


def entry_of(row: Sequence[Any]) -> Entry:
    """The entry of a row read with ``_COLUMNS`` (and ``material`` after them, when selected)."""
    return Entry(
        value=row[1],
        created_at=row[2],
        expires_at=row[3],
        call_seconds=row[4],
        meta=meta_of(row[5]),
        hits=row[6],
        last_hit_at=row[7],
        material=row[8] if len(row) > 8 else None,
    )


def meta_of(raw: str | bytes | None) -> dict[str, Any]:
    """An entry's metadata; unreadable metadata (damaged, foreign) is none, never a failed read."""
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        log.debug("ignoring unreadable entry metadata %r", raw[:80])
        return {}
    return meta if isinstance(meta, dict) else {}
