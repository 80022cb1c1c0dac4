"""Which optional packages are importable, without importing them."""

from __future__ import annotations

import importlib.util

__all__ = ["missing"]


def missing(modules: tuple[str, ...]) -> list[str]:
    """The names in ``modules`` that cannot be imported here."""
    absent = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            absent.append(name)
    return absent
