"""What one caller asks of the cache (``Request``) and gets back (``Fetched``), and how ``call_fn`` is called.

A ``Request`` carries a lookup's ``Key``, how to call on a miss and with which options, and what the
lookup met on its way (its warnings: a ``Request`` is its own ``Notices``). ``invoke`` calls
``call_fn`` the way the README promises: awaited if it returns an awaitable, refused with a clear
error if it cannot take the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, final

from ._notices import Notices
from .errors import ConfigurationError
from .keys import Key
from .stores import Entry

__all__ = ["Fetched", "Request", "Source", "invoke"]

T = TypeVar("T")

Source = Literal["l1", "store", "call", "coalesced"]


@final
@dataclass(slots=True)
class Fetched(Generic[T]):
    """One answer and where it came from: ``l1``, ``store``, ``call`` or ``coalesced``.

    Read-only by contract (each caller gets one of its own). Not a frozen dataclass only because
    one is built for every caller of every lookup, and a frozen one costs three times as much.
    """

    value: T
    source: Source
    key: str
    entry: Entry | None

    @property
    def hit(self) -> bool:
        """Served without an upstream call of its own (from L1, the store, or a shared call)."""
        return self.source != "call"


@final
class Request(Notices):
    """One caller's lookup: the key, how to call on a miss, and what the lookup met on its way."""

    __slots__ = (
        "call_fn",
        "describe",
        "key",
        "label",
        "mismatch",
        "missing",
        "oversized",
        "ttl",
        "value_type",
    )

    def __init__(
        self,
        key: Key,
        call_fn: Callable[[Any], Any],
        ttl: float | None,
        value_type: object,
        label: str | None,
        describe: Callable[[Any], Mapping[str, Any]] | None,
    ) -> None:
        self.key = key
        self.call_fn = call_fn
        self.ttl = ttl
        self.value_type = value_type
        self.label = label
        self.describe = describe
        self.messages = None
        self.store_failed = False
        self.mismatch = False  # the stored entry is of another value_type: leave it in place
        self.missing: str | None = None  # replay: why there is no store to read
        # The stored bytes found larger than max_value_bytes: a second read (a lease holder's
        # recheck) that finds them again neither inflates nor warns again.
        self.oversized: bytes | None = None


async def invoke(call_fn: Callable[[Any], Any], material: object) -> Any:
    """``call_fn(material)``, awaited if it returns an awaitable (a plain function's value is the answer).

    Called with the wrong arguments (a function of no arguments), it raises ``ConfigurationError``
    naming the fix; nothing was called then. The user's own exceptions pass through unchanged.
    """
    try:
        result = call_fn(material)
    except TypeError as exc:
        # Raised by the call itself (no frame of call_fn's own on the traceback): a signature that
        # cannot take the key material, not an error of the user's code.
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is None and not _takes_one(call_fn):
            raise ConfigurationError(
                f"call_fn {call_fn!r} cannot be called as call_fn(key): {exc}. agentcache passes the "
                "key material to it on a miss; accept it (async def call(key): ...) or wrap it "
                "(lambda _key: fn())"
            ) from exc
        raise
    if inspect.isawaitable(result):
        return await result
    return result


def _takes_one(call_fn: Callable[..., object]) -> bool:
    try:
        inspect.signature(call_fn).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins): assume it does
        return True
    return True
