"""Store URLs -> Store instances: a table of schemes, each imported only when it is used.

``memory://[?max_entries=N]``, ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
``sqlite:///~/path.db`` (each ``[?busy_timeout=SECONDS]``); ``redis://`` and ``rediss://`` need
the ``redis`` extra. An unknown scheme is a ``ConfigurationError`` that lists the known ones; a
missing extra names the package to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from urllib.parse import SplitResult, parse_qs

from ..errors import ConfigurationError
from ._url import SCHEME, redact_url, split_url
from .base import Entry, Store, namespace_of

__all__ = ["DEFAULT_URL", "Entry", "Store", "namespace_of", "open_store", "redact_url"]

DEFAULT_URL = "sqlite:///.agentcache/cache.db"

# scheme -> (module, factory name, extra to install if the import fails)
_SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("agentcache.stores.memory", "from_url", None),
    "sqlite": ("agentcache.stores.sqlite", "from_url", None),
    "redis": ("agentcache.stores.redis", "from_url", "redis"),
    "rediss": ("agentcache.stores.redis", "from_url", "redis"),
}


def open_store(url: str) -> Store:
    """Build (not yet connect) the store a URL names; a URL that reads two ways is refused (``_url.py``)."""
    if not isinstance(url, str) or "://" not in url:
        shown = redact_url(url) if isinstance(url, str) else url
        raise ConfigurationError(
            f"store URL {shown!r} is not a URL; use one of: {_known()} (e.g. {DEFAULT_URL!r} or 'memory://')"
        )
    given = url.partition("://")[0]
    scheme = given.lower()
    if scheme not in _SCHEMES:
        shown = repr(given) if SCHEME.fullmatch(given) else "(not a scheme)"
        raise ConfigurationError(
            f"unknown store scheme {shown} in {redact_url(url)!r}; known schemes: {_known()}"
        )
    parts = split_url(url)
    module_name, factory_name, extra = _SCHEMES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise ConfigurationError(
            f'{scheme}:// stores need an optional dependency: pip install "agentcache[{extra}]"'
        ) from exc
    factory: Callable[[SplitResult], Store] = getattr(module, factory_name)
    return factory(parts)


def query_options(parts: SplitResult, allowed: dict[str, Callable[[str], object]]) -> dict[str, object]:
    """Parse ``?name=value`` options of a store URL; unknown names and bad values are errors."""
    options: dict[str, object] = {}
    for name, values in parse_qs(parts.query, keep_blank_values=True, strict_parsing=False).items():
        if name not in allowed:
            raise ConfigurationError(
                f"unknown option {name!r} in {parts.scheme}:// URL; known: {sorted(allowed)}"
            )
        try:
            options[name] = allowed[name](values[-1])
        except ValueError as exc:
            raise ConfigurationError(f"bad value {values[-1]!r} for {name!r}: {exc}") from exc
    return options


def _known() -> str:
    return ", ".join(f"{s}://" for s in _SCHEMES)
