"""agentcache: an async cache for LLM-agent pipelines (single-flight, SQLite, exact keys)."""

from ._options import Mode
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
from .stats import CacheStats
from .stores.leases import LeasePolicy

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
    "LeasePolicy",
    "Mode",
    "NotACacheFileError",
    "UnstorableValueError",
]
