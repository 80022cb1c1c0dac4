"""agentcache: an async cache for LLM-agent pipelines (single-flight, SQLite, exact keys)."""

from .cache import AgentCache, Fetched
from .errors import (
    AgentCacheError,
    AgentCacheWarning,
    BackendError,
    BackendUnavailableError,
    CacheMissError,
    ConfigurationError,
    KeyMaterialError,
    NotACacheFileError,
    UnstorableValueError,
)
from .options import Mode
from .stats import CacheStats

__all__ = [
    "AgentCache",
    "AgentCacheError",
    "AgentCacheWarning",
    "BackendError",
    "BackendUnavailableError",
    "CacheMissError",
    "CacheStats",
    "ConfigurationError",
    "Fetched",
    "KeyMaterialError",
    "Mode",
    "NotACacheFileError",
    "UnstorableValueError",
]
