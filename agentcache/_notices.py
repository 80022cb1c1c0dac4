"""Warnings attributed to the caller's own line, wherever inside agentcache they arose.

A problem found inside a flight task (a store outage, an answer that cannot be stored) has no user
frame on its stack: a fixed ``stacklevel`` would point into asyncio or into agentcache, and Python's
once-per-location filter would then merge unrelated warnings into one. So problems are collected
as ``Notices`` on the lookup that met them and warned by that lookup's caller when it returns, with
the stack level found by walking out of agentcache's (and asyncio's) frames.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings

from .errors import AgentCacheWarning

__all__ = ["Notices", "warn_caller"]

_OWN_DIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
)


def warn_caller(message: str, category: type[Warning] = AgentCacheWarning) -> None:
    """Warn ``message``, attributed to the first frame outside agentcache and asyncio."""
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_OWN_DIRS):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


class Notices:
    """Warnings one lookup met, to be warned by its caller (``emit``), in the order they arose.

    ``messages`` is ``None`` until there is one (a lookup is cheap to make: most meet nothing).
    ``store_failed`` marks a lookup that met a store failure: it does not try the store again (one
    outage stalls a call at most once). A lookup's ``Request`` is its own ``Notices``.
    """

    __slots__ = ("messages", "store_failed")

    def __init__(self) -> None:
        self.messages: list[str] | None = None
        self.store_failed = False

    def add(self, message: str) -> None:
        """Remember ``message`` for the caller."""
        if self.messages is None:
            self.messages = [message]
        else:
            self.messages.append(message)

    def emit(self) -> None:
        """Warn each message from the caller's line, once; the list is emptied."""
        messages, self.messages = self.messages, None
        for message in messages or ():
            warn_caller(message)
