"""``@cache.cached``: route an async function's calls through ``get_or_call``.

The key material is ``{"fn": "<module>.<qualname>", "args": {<bound arguments, defaults applied>}}``,
so ``f(1)``, ``f(1, 2)`` (2 being the default) and ``f(x=1)`` share one entry, while a changed default
or a renamed function is a new key. Arguments named in ``ignore`` (``self``, a client object, a
logger) are left out of the key. The return annotation becomes the ``value_type``, so a function
annotated ``-> Summary`` gets a ``Summary`` back on a hit.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .cache import AgentCache

__all__ = ["cached_function"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# Annotations that the plain-JSON codec already restores exactly: no TypeAdapter needed.
_PLAIN = {str, int, bool, typing.Any}


def cached_function(
    cache: AgentCache,
    fn: F,
    *,
    ttl: float | timedelta | None,
    namespace: str | None,
    ignore: tuple[str, ...],
) -> F:
    """Wrap ``fn`` (an ``async def``) so that its results are cached in ``cache``."""
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(
            f"@cache.cached decorates async functions; {fn!r} is not one (use 'async def')"
        )
    signature = inspect.signature(fn)
    unknown = set(ignore) - set(signature.parameters)
    if unknown:
        raise ConfigurationError(f"ignore names no parameter of {fn.__qualname__}: {sorted(unknown)}")
    value_type = _value_type(fn)
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items() if k not in ignore}

        async def call(_material: object) -> Any:
            return await fn(*args, **kwargs)

        return await cache.get_or_call(
            {"fn": name, "args": arguments},
            call,
            ttl=ttl,
            namespace=namespace,
            value_type=value_type,
        )

    return wrapper  # type: ignore[return-value]


def _value_type(fn: Callable[..., Any]) -> Any:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to plain JSON values
        return None
    annotation = hints.get("return")
    if annotation is None or annotation in _PLAIN:
        return None
    return annotation
