"""The bytes of one Redis entry: an ``Entry`` packed into (and unpacked from) a single string value.

Layout: format byte 1; ``created_at``, ``expires_at`` (NaN: none) and ``call_seconds`` as big-endian
doubles; the byte lengths of the meta JSON and of the key material (all ones: no material); then
the meta JSON, the material and the value bytes. Fixed-size numbers keep a hit free of JSON parsing
unless the entry has metadata. The hit bookkeeping lives in a string of its own,
``"<count> <last hit>"``, so that counting a hit never rewrites the value.
"""

from __future__ import annotations

import json
import logging
import math
import struct

from ..base import Entry

__all__ = ["pack", "unpack"]

log = logging.getLogger(__name__)

_FORMAT = b"\x01"
_HEAD = struct.Struct(">dddII")
_NO_MATERIAL = 0xFFFFFFFF


def pack(entry: Entry) -> bytes:
    """The stored bytes of ``entry`` (its hit bookkeeping is not part of them)."""
    meta = json.dumps(dict(entry.meta), separators=(",", ":")).encode() if entry.meta else b""
    material = b"" if entry.material is None else entry.material.encode("utf-8", "surrogatepass")
    head = _HEAD.pack(
        entry.created_at,
        math.nan if entry.expires_at is None else entry.expires_at,
        entry.call_seconds,
        len(meta),
        _NO_MATERIAL if entry.material is None else len(material),
    )
    return b"".join((_FORMAT, head, meta, material, entry.value))


def unpack(key: str, blob: bytes, hits: bytes | None) -> Entry | None:
    """The Entry of ``blob`` with the bookkeeping ``hits``, or ``None`` (logged) if we did not write it."""
    try:
        if blob[:1] != _FORMAT:
            raise ValueError(f"unknown envelope byte {blob[:1]!r}")
        created_at, expires_at, call_seconds, meta_len, material_len = _HEAD.unpack_from(blob, 1)
        at = 1 + _HEAD.size
        meta = json.loads(blob[at : at + meta_len]) if meta_len else {}
        at += meta_len
        material = None
        if material_len != _NO_MATERIAL:
            material = blob[at : at + material_len].decode("utf-8", "surrogatepass")
            at += material_len
        count, last = 0, None
        if hits:
            count_text, last_text = hits.split(b" ", 1)
            count, last = int(count_text), float(last_text)
        return Entry(
            value=blob[at:],
            created_at=created_at,
            expires_at=None if math.isnan(expires_at) else expires_at,
            call_seconds=call_seconds,
            material=material,
            meta=meta,
            hits=count,
            last_hit_at=last,
        )
    except (ValueError, TypeError, struct.error) as exc:
        log.warning("ignoring unreadable redis entry %s: %s", key, exc)
        return None
