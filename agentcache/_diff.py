"""Structured diffs of two key-material documents: which paths differ, old and new, readably.

Key material is compared in its normal form (plain JSON values, see ``keys.normalize``). A change
names its path the way a reader would write it, ``settings.temperature`` or
``messages[3].parts[0].content``, and holds the old (stored) and new (requested) values.

Lists are aligned, not compared index by index: one message inserted into a conversation is one
change (``messages[2]`` added), not a change at every later index. Strings are shown as an excerpt
around their first difference, because prompts are long and differ in a word.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Final

__all__ = ["ABSENT", "Change", "diff", "dissimilarity", "render_changes", "render_value"]


class _Absent:
    """The value on the side of a change where the path does not exist."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Final = _Absent()

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTEXT = 24  # characters of unchanged text shown before and after a difference in a string
_WIDTH = 72  # at most this many characters of each side of a change are shown


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``path`` holds ``old`` when stored and ``new`` in the requested material."""

    path: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        """``"changed"``, ``"added"`` (absent in the stored material) or ``"removed"``."""
        if self.old is ABSENT:
            return "added"
        if self.new is ABSENT:
            return "removed"
        return "changed"

    def render(self) -> str:
        """One line: ``path: old -> new``, long values shortened around the difference."""
        old, new = self.old, self.new
        if isinstance(old, str) and isinstance(new, str):
            old_text, new_text = _string_excerpts(old, new)
        else:
            old_text, new_text = render_value(old), render_value(new)
        return f"{self.path or '(whole key)'}: {old_text} -> {new_text}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form: absent sides are left out."""
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.old is not ABSENT:
            out["old"] = self.old
        if self.new is not ABSENT:
            out["new"] = self.new
        return out


def diff(old: Any, new: Any) -> list[Change]:
    """The changes that turn normal-form ``old`` into ``new``, in document order."""
    changes: list[Change] = []
    _diff(old, new, "", changes)
    return changes


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    # == says True equals 1 inside containers; their JSON text (what is hashed) does not.
    if (
        type(old) is type(new)
        and old == new
        and (not isinstance(old, (dict, list)) or _texts([old]) == _texts([new]))
    ):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(old.keys() | new.keys()):
            child = _child(path, name)
            if name not in new:
                out.append(Change(child, old[name], ABSENT))
            elif name not in old:
                out.append(Change(child, ABSENT, new[name]))
            else:
                _diff(old[name], new[name], child, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        _diff_lists(old, new, path, out)
        return
    out.append(Change(path, old, new))


def _diff_lists(old: list[Any], new: list[Any], path: str, out: list[Change]) -> None:
    # Align on the canonical text of the items so an insertion shifts nothing after it.
    matcher = SequenceMatcher(None, _texts(old), _texts(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        # Pair items of a replaced run one by one (a changed message diffs into its fields);
        # whatever is left over on either side was removed or added whole.
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            _diff(old[i1 + k], new[j1 + k], f"{path}[{j1 + k}]", out)
        for i in range(i1 + paired, i2):
            out.append(Change(f"{path}[{i}]", old[i], ABSENT))
        for j in range(j1 + paired, j2):
            out.append(Change(f"{path}[{j}]", ABSENT, new[j]))


def _texts(items: Sequence[Any]) -> list[str]:
    return [json.dumps(item, sort_keys=True, separators=(",", ":")) for item in items]


def _child(path: str, name: str) -> str:
    if _NAME.match(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


def dissimilarity(changes: Iterable[Change]) -> float:
    """How much the changed values differ, summed; ranks candidates with equally many changes.

    A changed string counts by the share of it outside the common prefix and suffix (cheap, and
    what matters for prompts that differ in a word); any other change counts 1.
    """
    total = 0.0
    for change in changes:
        old, new = change.old, change.new
        if isinstance(old, str) and isinstance(new, str):
            prefix, suffix = _common_ends(old, new)
            longest = max(len(old), len(new))
            total += 1.0 - (prefix + suffix) / longest if longest else 0.0
        else:
            total += 1.0
    return total


def render_changes(changes: Sequence[Change], *, limit: int = 12, indent: str = "  ") -> str:
    """The changes one per line, at most ``limit`` of them plus a count of the rest."""
    lines = [indent + change.render() for change in changes[:limit]]
    if len(changes) > limit:
        lines.append(f"{indent}... and {len(changes) - limit} more")
    return "\n".join(lines)


def render_value(value: Any, width: int = _WIDTH) -> str:
    """Compact JSON of ``value``, cut to ``width`` characters (``(absent)`` for a missing side)."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 1] + "…"


def _string_excerpts(old: str, new: str) -> tuple[str, str]:
    """Both strings cut to the region where they differ, with some context on either side."""
    prefix, suffix = _common_ends(old, new)
    start = max(0, prefix - _CONTEXT)
    return _excerpt(old, start, len(old) - suffix), _excerpt(new, start, len(new) - suffix)


def _excerpt(text: str, start: int, end: int) -> str:
    middle = text[start:end]
    if len(middle) > _WIDTH:
        middle = middle[: _WIDTH - 1] + "…"
    tail = text[end : end + _CONTEXT]
    body = middle + tail
    lead = "…" if start > 0 else ""
    trail = "…" if end + _CONTEXT < len(text) else ""
    return lead + json.dumps(body, ensure_ascii=False) + trail


def _common_ends(a: str, b: str) -> tuple[int, int]:
    """Lengths of the common prefix and of the common suffix (not overlapping the prefix)."""
    limit = min(len(a), len(b))
    prefix = _common_prefix(a, b, limit)
    suffix = _common_prefix(a[::-1], b[::-1], limit - prefix)
    return prefix, suffix


def _common_prefix(a: str, b: str, limit: int) -> int:
    # Binary search on slice equality: C-speed comparisons instead of a Python loop per char.
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
