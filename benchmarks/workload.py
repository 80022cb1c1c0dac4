"""The one workload every benchmark uses: ~2 KB prompts sharing a 1.7 KB system prompt, ~1 KB answers.

Text is made of pseudo-words drawn with a Zipf-like skew from a fixed vocabulary, so it compresses
roughly as prose does (zlib ~2x on 1 KB) rather than not at all (random bytes) or absurdly well
(one repeated sentence). Everything derives from a seed: two runs, or a parent and a subprocess,
see the same prompts.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from functools import lru_cache

__all__ = [
    "SYSTEM_PROMPT",
    "answer",
    "hashed_key",
    "items",
    "prompt",
]

SEED = 20261127
_SYLLABLE_TEXT = "karitomenasoluvipedamozetiranokesubaligofanehajucoweyapiremadelosamitugavebonixe"
_SYLLABLES = tuple(_SYLLABLE_TEXT[i : i + 2] for i in range(0, len(_SYLLABLE_TEXT), 2))


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[list[str], list[float]]:
    rng = random.Random(SEED)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < 3000:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    # Zipf: a few words dominate. Cumulative, so each draw is a bisect, not a pass over 3,000.
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    return words, cumulative


def _text(rng: random.Random, length: int) -> str:
    words, cumulative = _vocabulary()
    parts: list[str] = []
    size = 0
    while size <= length:  # the joined text is size - 1 long
        sentence = (
            " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 16))).capitalize() + "."
        )
        parts.append(sentence)
        size += len(sentence) + 1
    return " ".join(parts)[:length]


SYSTEM_PROMPT = "You are a careful research assistant. " + _text(random.Random(SEED), 1700 - 38)
"""Shared by every prompt, as in an agent that sends the same instructions with every task."""


def prompt(i: int) -> str:
    """The ``i``-th prompt: the system prompt, then ~300 bytes of task unique to ``i``."""
    return f"{SYSTEM_PROMPT}\n\nTask {i}: {_text(random.Random(SEED * 31 + i), 300)}"


def answer(i: int) -> str:
    """The ~1 KB answer to prompt ``i``."""
    return _text(random.Random(SEED * 37 + i), 1024)


def items(start: int, stop: int) -> Iterator[tuple[str, str]]:
    """(prompt, answer) pairs for ``start <= i < stop``."""
    for i in range(start, stop):
        yield prompt(i), answer(i)


def hashed_key(text: str) -> str:
    """sha256 hex of a prompt: how a user keys a store that should not hold 2 KB keys."""
    return hashlib.sha256(text.encode()).hexdigest()
