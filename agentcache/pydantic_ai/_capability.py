"""CacheCapability: caches every model request of an agent by wrapping its model in a CachedModel."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.models import Model

from .. import AgentCache
from ._model import CachedModel, HitUsage, check_options

__all__ = ["CacheCapability"]


class CacheCapability(AbstractCapability[Any]):
    """Caches every model request of an agent: ``Agent(model, capabilities=[CacheCapability(cache)])``.

    It wraps the model serving each request in a ``CachedModel`` with the same options, so its keys
    are exactly those of ``CachedModel``; a model that is already a ``CachedModel`` is left alone.
    pydantic-ai builds the wrapper anew for every attempt, so all state lives on the cache.
    """

    def __init__(
        self,
        cache: AgentCache,
        *,
        label: str | None = None,
        ttl: float | timedelta | None = None,
        namespace: str | None = None,
        hit_usage: HitUsage = "zero",
        samples: int = 1,
        pace: float | None = None,
        id: str | None = None,
    ) -> None:
        self.id = id
        self.description = None
        self.defer_loading = False
        self.options: Mapping[str, Any] = {
            "cache": cache,
            "label": label,
            "ttl": ttl,
            "namespace": namespace,
            "hit_usage": hit_usage,
            "samples": samples,
            "pace": pace,
        }
        check_options(cache, hit_usage, samples, pace, ttl)  # fail now, not on the first request

    # Two capabilities are the same only if they are the same object (the dataclass base would
    # compare id/description/defer_loading only, making every CacheCapability equal).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"CacheCapability({shown})"

    def get_wrapper_model(self, model: Model) -> Model | None:
        if isinstance(model, CachedModel):
            return None
        return CachedModel(model, **self.options)
