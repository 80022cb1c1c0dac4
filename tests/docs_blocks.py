"""The code blocks of README.md and docs/: found once, named by file and line, for the docs tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))
BLOCK = re.compile(r"^```(\w[\w-]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
RUN = frozenset({"python", "bash"})  # executed (bash: each command, see test_docs.py)
SHOWN = frozenset({"text", "json", "console"})  # signatures and captured output, compared elsewhere


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its code, and where it is (``docs/keys.md:12``)."""

    page: Path
    line: int
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(lang: str | None = None, page: Path | None = None) -> list[Block]:
    """Every block of the pages (or of one page), optionally of one language, in reading order."""
    found: list[Block] = []
    for path in (page,) if page else PAGES:
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(path, line, match.group(1), match.group(2)))
    return [b for b in found if lang is None or b.lang == lang]
