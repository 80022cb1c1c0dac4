"""Export a store to a portable JSON Lines file and import it back, all or nothing.

The file is one JSON object per line::

    {"agentcache": "export", "format": 1, "exported_at": 1764260000.0}
    {"key": "default:v1:…", "material": <key material or null>, "value": "<base64>",
     "created_at": …, "expires_at": …, "call_seconds": …, "meta": {…}, "hits": …, "last_hit_at": …}
    …
    {"agentcache": "end", "entries": 2}

Values are the stored bytes (base64), so an imported entry is served exactly as it was recorded.
The end line makes a file cut at a line boundary detectable. An import reads and checks the whole
file first (JSON, fields and types, the key against its material, the value decodable) and writes
nothing unless every line passes; errors name the line. Then every entry is written by one
``set_many`` (one transaction on SQLite). Existing live entries are kept unless ``overwrite``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import codec
from .errors import AgentCacheError
from .keys import digest_of_canonical
from .stores.base import Entry, Store

__all__ = [
    "FORMAT",
    "ImportFileError",
    "ImportResult",
    "atomic_text_file",
    "import_entries",
    "read_export",
    "write_export",
]

FORMAT = 1
_FULL_KEY_PARTS = 3
_FLOAT_FIELDS = ("created_at", "call_seconds")
_OPTIONAL_FLOAT_FIELDS = ("expires_at", "last_hit_at")


class ImportFileError(AgentCacheError, ValueError):
    """An import file that is not a complete, valid agentcache export; nothing was imported."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}; nothing was imported")


def _line_of(key: str, entry: Entry) -> str:
    record = {
        "key": key,
        "material": None if entry.material is None else json.loads(entry.material),
        "value": base64.b64encode(entry.value).decode("ascii"),
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "call_seconds": entry.call_seconds,
        "meta": dict(entry.meta),
        "hits": entry.hits,
        "last_hit_at": entry.last_hit_at,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@contextmanager
def atomic_text_file(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """A text file that appears whole at ``path`` when the block succeeds, and not at all if not.

    It is written next to its destination and renamed. (Plain blocking writes: this is for the
    command line, whose event loop serves nobody else.)
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


async def write_export(
    store: Store,
    out: IO[str],
    *,
    namespace: str | None,
    now: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write an export to an open text stream (a file, or stdout); return the entry count."""
    header = {"agentcache": "export", "format": FORMAT, "exported_at": now}
    out.write(json.dumps(header) + "\n")
    count = 0
    async for key, entry in store.scan(namespace):
        if entry.is_expired(now):
            continue
        out.write(_line_of(key, entry) + "\n")
        count += 1
        if progress is not None:
            progress(1)
    out.write(json.dumps({"agentcache": "end", "entries": count}) + "\n")
    return count


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: entries written, kept (already stored), skipped (expired)."""

    imported: int
    kept: int
    expired: int


def read_export(
    lines: Iterable[str], source: str, progress: Callable[[int], None] | None = None
) -> list[tuple[str, Entry]]:
    """Parse and check a whole export; raise ``ImportFileError`` naming the first bad line."""
    entries: list[tuple[str, Entry]] = []
    numbered: Iterator[tuple[int, str]] = enumerate(lines, start=1)
    ended = False
    number = 0
    for number, raw in numbered:
        if progress is not None:
            progress(1)
        if ended:
            if raw.strip():
                raise ImportFileError(source, number, "content after the end line")
            continue
        if not raw.endswith("\n"):
            raise ImportFileError(source, number, "the line is cut off (truncated file?)")
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ImportFileError(source, number, f"not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ImportFileError(source, number, "not a JSON object")
        if number == 1:
            _check_header(record, source)
            continue
        if record.get("agentcache") == "end":
            if record.get("entries") != len(entries):
                raise ImportFileError(
                    source,
                    number,
                    f"the end line counts {record.get('entries')!r} entries but the file holds "
                    f"{len(entries)}",
                )
            ended = True
            continue
        entries.append(_entry_of(record, source, number))
    if number == 0:
        raise ImportFileError(source, 1, "the file is empty")
    if not ended:
        raise ImportFileError(source, number, "the file ends without its end line (truncated or cut?)")
    return entries


def _check_header(record: dict[str, Any], source: str) -> None:
    if record.get("agentcache") != "export":
        raise ImportFileError(source, 1, "not an agentcache export (no header line)")
    if record.get("format") != FORMAT:
        raise ImportFileError(
            source, 1, f"export format {record.get('format')!r}; this agentcache reads {FORMAT}"
        )


def _entry_of(record: dict[str, Any], source: str, number: int) -> tuple[str, Entry]:
    def bad(reason: str) -> ImportFileError:
        return ImportFileError(source, number, reason)

    key = record.get("key")
    if not isinstance(key, str) or len(key.split(":")) != _FULL_KEY_PARTS:
        raise bad(f"'key' must be a stored key like 'default:v1:<sha256>', not {key!r}")
    for name in _FLOAT_FIELDS:
        if not _is_number(record.get(name)):
            raise bad(f"{name!r} must be a number, not {record.get(name)!r}")
    for name in _OPTIONAL_FLOAT_FIELDS:
        if record.get(name) is not None and not _is_number(record.get(name)):
            raise bad(f"{name!r} must be a number or null, not {record.get(name)!r}")
    hits = record.get("hits", 0)
    if not isinstance(hits, int) or isinstance(hits, bool) or hits < 0:
        raise bad(f"'hits' must be a non-negative integer, not {hits!r}")
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise bad("'meta' must be an object")
    try:
        value = base64.b64decode(record.get("value", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise bad("'value' is not valid base64") from None
    try:
        codec.decode(value)
    except codec.CorruptValue as exc:
        raise bad(f"the value cannot be decoded ({exc})") from None
    material: str | None = None
    if record.get("material") is not None:
        material = json.dumps(record["material"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        if key.rsplit(":", 1)[1] != digest_of_canonical(material):
            raise bad("the key does not match its key material (was the material edited?)")
    entry = Entry(
        value=value,
        created_at=float(record["created_at"]),
        expires_at=None if record.get("expires_at") is None else float(record["expires_at"]),
        call_seconds=float(record["call_seconds"]),
        material=material,
        meta=meta,
        hits=hits,
        last_hit_at=None if record.get("last_hit_at") is None else float(record["last_hit_at"]),
    )
    return key, entry


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


async def import_entries(
    store: Store,
    entries: list[tuple[str, Entry]],
    *,
    overwrite: bool = False,
    now: float | None = None,
) -> ImportResult:
    """Write checked entries (from ``read_export``) in one ``set_many``; keep existing ones."""
    now = time.time() if now is None else now
    live = [(key, entry) for key, entry in entries if not entry.is_expired(now)]
    expired = len(entries) - len(live)
    kept = 0
    if not overwrite and live:
        existing = await store.get_many([key for key, _ in live], now)
        fresh = [item for item, found in zip(live, existing, strict=True) if found is None]
        kept = len(live) - len(fresh)
        live = fresh
    if live:
        await store.set_many(live)
    return ImportResult(imported=len(live), kept=kept, expired=expired)
