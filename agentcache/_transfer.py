"""Export a store to a portable JSON Lines file and import it back, all or nothing.

The file is one JSON object per line::

    {"agentcache": "export", "format": 1, "exported_at": 1764260000.0}
    {"key": "default:v1:…", "material": <key material or null>, "value": "<base64>",
     "created_at": …, "expires_at": …, "call_seconds": …, "meta": {…}, "hits": …, "last_hit_at": …}
    …
    {"agentcache": "end", "entries": 2}

Values are the stored bytes (base64), so an imported entry is served exactly as it was recorded.
The end line makes a file cut at a line boundary detectable. Lines are UTF-8; one holding a lone
surrogate (a prompt may), which UTF-8 cannot encode, is written with ASCII escapes.

An import reads and checks the whole file first and writes nothing unless every line passes;
errors name the line. A file is hostile input (it may come from anywhere), so every field is
checked for what any store could refuse or mis-serve: UTF-8 text, JSON nested no deeper than an
export nests, a key a cache can look up (a usable namespace, this key version, a sha256 digest),
the key against its material, times that are real dates (0 to year 9999), finite non-negative
call seconds, a hit count a store's integer holds, and a value that decodes within
``max_value_bytes`` (a zlib stream crafted to inflate without end is refused, never inflated).
Then every entry is written by one ``set_many`` (one transaction on SQLite, one MULTI/EXEC on
Redis). Existing live entries are kept unless ``overwrite``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import codec
from .errors import AgentCacheError, ConfigurationError
from .keys import digest_of_canonical, validate_stored_key
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
_LATEST_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: the last second a date can show
_MOST_HITS = 2**53  # far beyond any real count, and exact as a float in every store
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape reads them


class ImportFileError(AgentCacheError, ValueError):
    """An import file that is not a complete, valid agentcache export; nothing was imported."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}; nothing was imported")


def _line_of(key: str, entry: Entry) -> str:
    """The export line of one entry: UTF-8 JSON, or ASCII escapes where UTF-8 cannot hold the text."""
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
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in the key material: JSON escapes carry it
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))
    return line


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
    lines: Iterable[str],
    source: str,
    progress: Callable[[int], None] | None = None,
    *,
    max_value_bytes: int = codec.MAX_VALUE_BYTES,
) -> list[tuple[str, Entry]]:
    """Parse and check a whole export; raise ``ImportFileError`` naming the first bad line.

    ``lines`` are text; bytes that were not UTF-8 are expected as ``surrogateescape`` reads them
    (``open(..., errors="surrogateescape")``), so that the error can name the line.
    """
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
        record = _parsed(raw, source, number)
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
        entries.append(_entry_of(record, source, number, max_value_bytes))
    if number == 0:
        raise ImportFileError(source, 1, "the file is empty")
    if not ended:
        raise ImportFileError(source, number, "the file ends without its end line (truncated or cut?)")
    return entries


def _parsed(raw: str, source: str, number: int) -> Any:
    """The JSON of one line, or an ``ImportFileError`` saying why it has none."""
    if not raw.isascii():
        undecoded = _UNDECODED.search(raw)
        if undecoded is not None:
            byte = ord(undecoded.group()) - 0xDC00
            raise ImportFileError(
                source,
                number,
                f"the line is not UTF-8 text (byte 0x{byte:02x} at character {undecoded.start() + 1})",
            )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportFileError(source, number, f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise ImportFileError(source, number, "JSON nested too deeply (no export nests like this)") from None
    except ValueError:  # an integer longer than Python reads; its own wording varies by version
        limit = sys.get_int_max_str_digits()
        raise ImportFileError(
            source,
            number,
            f"JSON that cannot be read: a number longer than {limit} digits (no export holds one)",
        ) from None


def _check_header(record: dict[str, Any], source: str) -> None:
    if record.get("agentcache") != "export":
        raise ImportFileError(source, 1, "not an agentcache export (no header line)")
    if record.get("format") != FORMAT:
        raise ImportFileError(
            source, 1, f"export format {record.get('format')!r}; this agentcache reads {FORMAT}"
        )


def _entry_of(record: dict[str, Any], source: str, number: int, max_value_bytes: int) -> tuple[str, Entry]:
    def bad(reason: str) -> ImportFileError:
        return ImportFileError(source, number, reason)

    try:
        key = validate_stored_key(record.get("key"))
    except ConfigurationError as exc:
        shown = _shown(record.get("key"))
        raise bad(f"'key' must be a stored key like 'default:v1:<sha256 hex>', not {shown}: {exc}") from None
    created_at = _time(record.get("created_at"), "created_at", bad)
    expires_at = _optional_time(record.get("expires_at"), "expires_at", bad)
    last_hit_at = _optional_time(record.get("last_hit_at"), "last_hit_at", bad)
    call_seconds = _as_float(record.get("call_seconds"))
    if not 0 <= call_seconds < math.inf:
        raise bad(f"'call_seconds' must be a finite number >= 0, not {_shown(record.get('call_seconds'))}")
    hits = record.get("hits", 0)
    if type(hits) is not int or not 0 <= hits <= _MOST_HITS:
        raise bad(f"'hits' must be an integer from 0 to {_MOST_HITS}, not {_shown(hits)}")
    meta = record.get("meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise bad("'meta' must be an object")
    try:
        value = base64.b64decode(record.get("value", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise bad("'value' is not valid base64") from None
    try:
        codec.decode(value, max_bytes=max_value_bytes)
    except codec.OversizedValue as exc:
        raise bad(
            f"the value cannot be imported ({exc}; import --max-value-bytes raises the limit)"
        ) from None
    except codec.CorruptValue as exc:
        raise bad(f"the value cannot be decoded ({exc})") from None
    material: str | None = None
    if record.get("material") is not None:
        try:
            material = json.dumps(
                record["material"], sort_keys=True, separators=(",", ":"), ensure_ascii=True
            )
        except (RecursionError, ValueError):
            raise bad("the key material cannot be written as canonical JSON") from None
        if key.rsplit(":", 1)[1] != digest_of_canonical(material):
            raise bad("the key does not match its key material (was the material edited?)")
    entry = Entry(
        value=value,
        created_at=created_at,
        expires_at=expires_at,
        call_seconds=call_seconds,
        material=material,
        meta=meta,
        hits=hits,
        last_hit_at=last_hit_at,
    )
    return key, entry


def _time(value: object, name: str, bad: Callable[[str], ImportFileError], null: str = "") -> float:
    """A point in time: seconds since 1970, from 0 to the end of year 9999 (a date every store and
    ``ls`` can show; a Redis expiry from it never overflows)."""
    when = _as_float(value)
    if not 0 <= when <= _LATEST_TIME:
        raise bad(
            f"{name!r} must be a time in seconds since 1970 (0 to {_LATEST_TIME:.0f}){null}, "
            f"not {_shown(value)}"
        )
    return when


def _optional_time(value: object, name: str, bad: Callable[[str], ImportFileError]) -> float | None:
    return None if value is None else _time(value, name, bad, " or null")


def _as_float(value: object) -> float:
    """``value`` as a float; NaN, which no range holds, for a non-number or an int too large for one."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.nan


def _shown(value: object) -> str:
    """``repr(value)``, cut short: a hostile line may hold a huge value."""
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} characters)"


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
