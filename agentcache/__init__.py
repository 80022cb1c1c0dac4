"""agentcache: an async cache for LLM-agent pipelines (single-flight, SQLite, exact keys)."""

from ._options import Mode
from ._request import Fetched
from ._version import __version__
from .cache import AgentCache
from .errors import (
    AgentCacheError,
    AgentCacheWarning,
    BackendError,
    BackendUnavailableError,
    CacheMissError,
    ConfigurationError,
    EventLoopConflictError,
    KeyMaterialError,
    NotACacheFileError,
    StoreMissingError,
    UnstorableValueError,
)
from .leasing import LeasePolicy
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
    "EventLoopConflictError",
    "Fetched",
    "KeyMaterialError",
    "LeasePolicy",
    "Mode",
    "NotACacheFileError",
    "StoreMissingError",
    "UnstorableValueError",
    "__version__",
]
