"""Why did this miss? Find the stored entries nearest to some key material and say what differs.

Finding candidates must not read the whole store, so every entry records a coarse **family**
fingerprint when it is stored (``meta["family"]``, see ``family``): the model, the conversation
before its last message, the function name of ``@cache.cached`` keys, and the names of the
material's top-level fields, hashed. Two requests
that differ only in sampling settings, in tool definitions, or in the last (or only) message
share a family. A store that can look a family up (``FamilyIndex``, e.g. SQLite's index) answers
directly; otherwise, or when the family has no other member, the newest ``scan_limit`` entries of
the namespace are compared instead, and the explanation says which search it made.

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
from typing import Any, Protocol, runtime_checkable

from .admin import scanning
from .diff import Change, diff, dissimilarity, render_changes
from .keys import normalize
from .stores.base import Entry, Store, namespace_of

__all__ = [
    "MODEL_FIELDS",
    "Explanation",
    "FamilyIndex",
    "Nearest",
    "explain",
    "family",
    "family_of",
    "material_of",
]

MODEL_FIELDS = ("model", "model_name", "model_id")
"""Top-level fields of key material that name the model (kept in the family)."""

_IDENTITY_FIELDS = (*MODEL_FIELDS, "fn")  # "fn": the function name in @cache.cached keys

_HISTORY_FIELDS = ("messages", "history")
_FAMILY_VERSION = b"f1\x00"  # changes whenever the family rule does


@runtime_checkable
class FamilyIndex(Protocol):
    """An optional store capability: look entries up by their ``meta["family"]`` without a scan."""

    async def find_family(self, namespace: str, family: str, limit: int) -> list[tuple[str, Entry]]:
        """Up to ``limit`` entries of ``namespace`` in ``family``, newest first, with material."""


def family(normal: Any) -> str | None:
    """The coarse family fingerprint of normal-form key material, or ``None`` if it has none.

    Only dict material has one: a plain prompt has no structure to be coarse about, and a miss on
    one is explained from the newest entries instead.
    """
    if not isinstance(normal, dict):
        return None
    identity = {name: normal[name] for name in _IDENTITY_FIELDS if name in normal}
    history: Any = None
    for name in _HISTORY_FIELDS:
        messages = normal.get(name)
        if isinstance(messages, list):
            history = messages[:-1]
            break
    return _fingerprint(identity, history, sorted(normal))


def family_of(material: object) -> str | None:
    """The family of key material as passed to the cache (``None`` for a plain prompt).

    Equal to ``family(normalize(material))``, but a plain dict is not normalised whole: only the
    few fields the family reads are (it runs on every store, and keys can be large).
    """
    if isinstance(material, str):
        return None
    if type(material) is not dict or not all(
        type(name) is str and not name.startswith("$") for name in material
    ):
        return family(normalize(material))  # models, dataclasses, escaped names: the long way
    identity = {name: normalize(material[name]) for name in _IDENTITY_FIELDS if name in material}
    history: Any = None
    for name in _HISTORY_FIELDS:
        messages = material.get(name)
        if type(messages) is list or type(messages) is tuple:
            history = normalize(list(messages[:-1]))
            break
        if messages is not None:
            return family(normalize(material))  # e.g. a model holding the messages
    return _fingerprint(identity, history, sorted(material))


def _fingerprint(identity: dict[str, Any], history: Any, fields: list[str]) -> str:
    coarse = {"identity": identity, "history": history, "fields": fields}
    text = json.dumps(coarse, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(_FAMILY_VERSION + text.encode("ascii")).hexdigest()[:32]


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
    family: str | None
    stored: Entry | None
    nearest: tuple[Nearest, ...]
    searched: str  # "family" (the index or a scan found family members) or "recent"
    compared: int  # candidates compared
    without_material: int  # candidates that could not be compared
    scan_limit: int
    now: float = field(default_factory=time.time)

    def render(self, *, limit: int = 12, with_key: bool = True) -> str:
        """A readable report: the key, the nearest recorded entry and the diff."""
        lines = [f"key      {self.key}"] if with_key else []
        if self.stored is not None:
            state = "expired" if self.stored.is_expired(self.now) else "live"
            lines.append(f"stored   yes ({state}, recorded {_when(self.stored.created_at)})")
        if not self.material_known:
            lines.append(
                "note     this key's material is unknown (stored with key material turned off); "
                "entries of its family are listed but what differs cannot be shown"
            )
        if not self.nearest:
            where = "its family" if self.searched == "family" else f"the newest {self.scan_limit}"
            namespace = namespace_of(self.key)
            lines.append(f"nearest  none: no other entry in {where} of namespace {namespace!r}")
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
            "entries of the same family (model, earlier messages, field names)"
            if self.searched == "family"
            else f"the newest {self.scan_limit} entries of the namespace (no family match)"
        )
        lines.append(f"searched {self.compared} candidate(s): {how}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (for ``agentcache explain --json``)."""
        return {
            "key": self.key,
            "stored": self.stored is not None,
            "material_known": self.material_known,
            "family": self.family,
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
    its family, so its siblings are still listed.
    """
    now = time.time() if now is None else now
    namespace = namespace_of(key)
    # now=0.0: nothing counts as expired, so an expired entry under this key is still reported.
    stored = (await store.get_many([key], 0.0))[0]
    fam = family(normal) if material_known else None
    if fam is None and stored is not None:
        fam = stored.meta.get("family")
    candidates, searched = await _candidates(store, namespace, fam, family_limit, scan_limit)
    nearest: list[Nearest] = []
    without_material = 0
    for cand_key, entry in candidates:
        if cand_key == key:
            continue
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
        family=fam,
        stored=stored,
        nearest=tuple(nearest[:limit]),
        searched=searched,
        compared=compared,
        without_material=without_material,
        scan_limit=scan_limit,
        now=now,
    )


async def _candidates(
    store: Store, namespace: str, fam: str | None, family_limit: int, scan_limit: int
) -> tuple[list[tuple[str, Entry]], str]:
    if fam is not None and isinstance(store, FamilyIndex):
        members = await store.find_family(namespace, fam, family_limit)
        if len(members) > 0:
            return members, "family"
    recent: list[tuple[str, Entry]] = []
    async with scanning(store, namespace) as entries:
        async for item in entries:
            recent.append(item)
            if len(recent) >= scan_limit:
                break
    if fam is not None:
        members = [item for item in recent if item[1].meta.get("family") == fam]
        if members:
            return members[:family_limit], "family"
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
