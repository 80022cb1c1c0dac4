"""Why did this miss? Find the stored entries nearest to some key material and say what differs.

Finding candidates must not read the whole store, so every entry records two fingerprints in its
metadata when it is stored (``fingerprints_of``), and stores index them:

- ``conversation``: the messages, exactly. Requests that differ only in the model, sampling
  settings or tool definitions share it: the nearest entry is found precisely, however many
  entries the store holds.
- ``family``: coarser, the model, the messages before the last one, the function name of
  ``@cache.cached`` keys and the names of the material's top-level fields. Requests that differ
  only in their last (or only) message share it too. Families can be large (every single-turn
  case of an eval suite on one model is one family), so only the newest ``family_limit`` members
  are compared.

A store that can look fingerprints up (``capabilities.FingerprintIndex``, e.g. SQLite's indexes) answers
directly; otherwise, or when no other entry shares a fingerprint, the newest ``scan_limit`` entries
of the namespace are compared instead, and the explanation says which search it made. A plain
prompt has no fingerprints: it is always explained from the newest entries.

Candidates are ranked by how many paths differ, then by how much (``diff.dissimilarity``), then
newest first. Entries stored without key material (``store_key_material=False``) can be counted
but not compared: the explanation says so rather than guessing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._admin import scanning
from ._diff import Change, diff, dissimilarity, render_changes
from .keys import normalize
from .stores.base import Entry, Store, namespace_of
from .stores.capabilities import FingerprintIndex, fingerprint_index_of

__all__ = [
    "FACETS",
    "MODEL_FIELDS",
    "Explanation",
    "FingerprintIndex",
    "Nearest",
    "explain",
    "fingerprints",
    "fingerprints_of",
    "material_of",
]

FACETS = ("conversation", "family")
"""The fingerprints kept in ``Entry.meta`` for explain, finest first."""

MODEL_FIELDS = ("model", "model_name", "model_id")
"""Top-level fields of key material that name the model (kept in the family)."""

_IDENTITY_FIELDS = (*MODEL_FIELDS, "fn")  # "fn": the function name in @cache.cached keys
_HISTORY_FIELDS = ("messages", "history")
_VERSION = b"f1\x00"  # changes whenever a fingerprint rule does


def fingerprints(normal: Any) -> dict[str, str]:
    """The fingerprints of normal-form key material (none for a plain prompt)."""
    if not isinstance(normal, dict):
        return {}
    identity = {name: normal[name] for name in _IDENTITY_FIELDS if name in normal}
    messages = next((normal[name] for name in _HISTORY_FIELDS if isinstance(normal.get(name), list)), None)
    return _fingerprints(identity, messages, sorted(normal))


def fingerprints_of(material: object) -> dict[str, str]:
    """The fingerprints of key material as passed to the cache (none for a plain prompt).

    Equal to ``fingerprints(normalize(material))``, but a plain dict is not normalised whole: only
    the fields the fingerprints read are (this runs on every store, and keys can be large).
    """
    if isinstance(material, str):
        return {}
    if type(material) is not dict or not all(
        type(name) is str and not name.startswith("$") for name in material
    ):
        return fingerprints(normalize(material))  # models, dataclasses, escaped names
    identity = {name: normalize(material[name]) for name in _IDENTITY_FIELDS if name in material}
    messages: Any = None
    for name in _HISTORY_FIELDS:
        value = material.get(name)
        if type(value) is list or type(value) is tuple:
            messages = normalize(value)
            break
        if value is not None:
            return fingerprints(normalize(material))  # e.g. a model holding the messages
    return _fingerprints(identity, messages, sorted(material))


def _fingerprints(identity: dict[str, Any], messages: list[Any] | None, fields: list[str]) -> dict[str, str]:
    history = None if messages is None else messages[:-1]
    out = {"family": _hash({"identity": identity, "history": history, "fields": fields})}
    if messages:
        out["conversation"] = _hash({"messages": messages})
    return out


def _hash(coarse: dict[str, Any]) -> str:
    text = json.dumps(coarse, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(_VERSION + text.encode("ascii")).hexdigest()[:16]  # a filter, not an identity


def material_of(entry: Entry) -> Any:
    """The normal-form key material stored with ``entry`` (``None`` if it was not stored)."""
    if entry.material is None:
        return None
    return json.loads(entry.material)


@dataclass(frozen=True, slots=True)
class Nearest:
    """A stored entry close to the explained material; ``changes`` is ``None`` without material."""

    key: str
    entry: Entry
    changes: tuple[Change, ...] | None

    def rank(self) -> tuple[int, float, float]:
        """Sort key: fewest changes, then smallest changes, then newest."""
        if self.changes is None:
            return (1 << 30, 0.0, -self.entry.created_at)
        return (len(self.changes), dissimilarity(self.changes), -self.entry.created_at)


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the store holds near some key material, and how the search was made."""

    key: str
    material_known: bool
    fingerprints: Mapping[str, str]
    stored: Entry | None
    nearest: tuple[Nearest, ...]
    searched: str  # "related" (entries sharing a fingerprint) or "recent" (the newest entries)
    compared: int  # candidates compared
    without_material: int  # candidates that could not be compared
    scan_limit: int
    now: float = field(default_factory=time.time)
    examined: int = -1  # entries looked at (0: the namespace is empty); -1: not counted

    def render(self, *, limit: int = 12, with_key: bool = True) -> str:
        """A readable report: the key, the nearest recorded entry and the diff."""
        lines = [f"key      {self.key}"] if with_key else []
        if self.stored is not None:
            state = "expired" if self.stored.is_expired(self.now) else "live"
            lines.append(f"stored   yes ({state}, recorded {_when(self.stored.created_at)})")
        if not self.material_known:
            lines.append(
                "note     this key's material is unknown (stored with key material turned off); "
                "related entries are listed but what differs cannot be shown"
            )
        if not self.nearest and not self.examined and self.stored is None:
            lines.append(f"nearest  none: namespace {namespace_of(self.key)!r} holds no entries yet")
            return "\n".join(lines)
        if not self.nearest:
            namespace = namespace_of(self.key)
            lines.append(
                f"nearest  none: nothing comparable among the newest {self.scan_limit} entries "
                f"of namespace {namespace!r}"
            )
            return "\n".join(lines)
        best, *others = self.nearest
        lines.append(f"nearest  {best.key}  ({_describe(best.entry, self.now)})")
        lines.extend(_changes_lines(best, limit))
        for other in others:
            count = "?" if other.changes is None else str(len(other.changes))
            lines.append(f"also     {other.key}  ({count} difference(s))")
        if self.without_material:
            lines.append(
                f"note     {self.without_material} candidate(s) were stored without key material "
                "(store_key_material=False): they may be nearer, but cannot be compared"
            )
        how = (
            "entries with the same messages, or the same model (or function) and earlier messages"
            if self.searched == "related"
            else f"the newest {self.scan_limit} entries of the namespace (none related)"
        )
        lines.append(f"searched {self.compared} candidate(s): {how}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (for ``agentcache explain --json``)."""
        return {
            "key": self.key,
            "stored": self.stored is not None,
            "material_known": self.material_known,
            "fingerprints": dict(self.fingerprints),
            "searched": self.searched,
            "compared": self.compared,
            "without_material": self.without_material,
            "nearest": [
                {
                    "key": near.key,
                    "created_at": near.entry.created_at,
                    "meta": dict(near.entry.meta),
                    "changes": None
                    if near.changes is None
                    else [change.to_json() for change in near.changes],
                }
                for near in self.nearest
            ],
        }


async def explain(
    store: Store,
    key: str,
    normal: Any = None,
    *,
    material_known: bool = True,
    now: float | None = None,
    limit: int = 3,
    family_limit: int = 500,
    scan_limit: int = 1000,
) -> Explanation:
    """Explain ``key`` (whose normal-form material is ``normal``) against what ``store`` holds.

    When the material is unknown (``material_known=False``), the entry stored under ``key`` lends
    its fingerprints, so related entries are still listed.
    """
    now = time.time() if now is None else now
    # now=0.0: nothing counts as expired, so an expired entry under this key is still reported.
    stored = (await store.get_many([key], 0.0))[0]
    prints = fingerprints(normal) if material_known else {}
    if not prints and stored is not None:
        prints = {f: stored.meta[f] for f in FACETS if isinstance(stored.meta.get(f), str)}
    candidates, searched = await _candidates(store, key, prints, family_limit, scan_limit)
    nearest: list[Nearest] = []
    without_material = 0
    for cand_key, entry in candidates:
        if entry.material is None or not material_known:
            without_material += entry.material is None
            nearest.append(Nearest(cand_key, entry, None))
            continue
        other = material_of(entry)
        if type(other) is not type(normal):
            continue  # a prompt and a structured request are unrelated, not "near"
        nearest.append(Nearest(cand_key, entry, tuple(diff(other, normal))))
    compared = len(nearest)
    nearest.sort(key=Nearest.rank)
    return Explanation(
        key=key,
        material_known=material_known,
        fingerprints=prints,
        stored=stored,
        nearest=tuple(nearest[:limit]),
        searched=searched,
        compared=compared,
        without_material=without_material,
        scan_limit=scan_limit,
        now=now,
        examined=len(candidates),
    )


async def _candidates(
    store: Store, key: str, prints: Mapping[str, str], family_limit: int, scan_limit: int
) -> tuple[list[tuple[str, Entry]], str]:
    """Entries related to ``key`` by a fingerprint, else the newest of its namespace."""
    namespace = namespace_of(key)
    related: dict[str, Entry] = {}
    index = fingerprint_index_of(store) if prints else None
    if index is not None:
        for facet in FACETS:
            if facet in prints:
                found = await index.find_related(namespace, facet, prints[facet], family_limit)
                for found_key, entry in found:
                    related.setdefault(found_key, entry)
        related.pop(key, None)
        if related:
            return list(related.items()), "related"
    recent: list[tuple[str, Entry]] = []
    async with scanning(store, namespace) as entries:
        async for item in entries:
            if item[0] != key:
                recent.append(item)
            if len(recent) >= scan_limit:
                break
    members = [item for item in recent if any(item[1].meta.get(f) == fp for f, fp in prints.items())]
    if members:
        return members, "related"
    return recent, "recent"


def _changes_lines(near: Nearest, limit: int) -> list[str]:
    if near.changes is None:
        return ["         (stored without key material: what differs cannot be shown)"]
    if not near.changes:
        return ["         (same key material: an older key version or another namespace rule)"]
    head = f"differs  {len(near.changes)} path(s), stored -> requested:"
    return [head, render_changes(near.changes, limit=limit, indent="  ")]


def _describe(entry: Entry, now: float) -> str:
    parts = [f"recorded {_when(entry.created_at)}"]
    meta: Mapping[str, Any] = entry.meta
    for name in ("model", "label"):
        if meta.get(name):
            parts.append(f"{name} {meta[name]}")
    if entry.hits:
        parts.append(f"{entry.hits} hit(s)")
    if entry.is_expired(now):
        parts.append("expired")
    return ", ".join(parts)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))
