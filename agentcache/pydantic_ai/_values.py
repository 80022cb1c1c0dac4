"""How responses are stored: the value type the core encodes them with, what may be stored, what stats learn.

A response is stored as pydantic-ai's own JSON for a ``ModelResponse`` (``response_type()``, the
``value_type`` given to the cache): an exact round trip (bytes as base64, ``Decimal`` costs kept),
and the core decodes a fresh object for every caller that did not make the call itself. A stored
value this pydantic-ai cannot validate (an older or newer message format) is the core's business:
a miss for this caller that leaves the entry alone.
"""

from __future__ import annotations

from contextlib import suppress
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.messages import ModelResponse

__all__ = ["NotStored", "describe", "response_type", "storable"]


@cache
def response_type() -> TypeAdapter[ModelResponse]:
    """The value type of stored responses (built on first use: importing stays cheap)."""
    return TypeAdapter(ModelResponse)


class NotStored(Exception):
    """Carries an answer that must reach its callers but not the store (suspended, incomplete).

    Raised out of the cache's call so nothing is stored; the caller whose call made it gets the
    object itself, any other caller its own copy decoded from ``data``.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__("response not complete; not stored")
        self.data = data

    def copy(self) -> ModelResponse:
        """A fresh response object of this answer."""
        return response_type().validate_json(self.data)


def storable(response: ModelResponse) -> ModelResponse:
    """``response``, or ``NotStored`` if it may not be stored (only complete responses are)."""
    if response.state != "complete":
        raise NotStored(response_type().dump_json(response))
    return response


def describe(response: ModelResponse, model_id: str) -> dict[str, Any]:
    """What the stats need: model, tokens, and the cost where genai-prices knows the model."""
    usage = response.usage
    meta: dict[str, Any] = {
        "model": response.model_name or model_id,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    }
    cost = usage.cost
    if cost is None and response.model_name:
        with suppress(LookupError, ValueError, AssertionError):  # unknown model: cost unknown
            cost = response.cost().total_price
    if cost is not None:
        meta["cost"] = float(cost)
    return meta
