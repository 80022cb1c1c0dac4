"""The error tree of agentcache, and the warning it raises when it fails open.

::

    AgentCacheError                      every error agentcache raises on its own account
    ├── KeyMaterialError (TypeError)     key material of an unsupported type, NaN/inf, a non-str dict key
    ├── UnstorableValueError (TypeError) a value that would not come back equal and same-typed
    ├── ConfigurationError (ValueError)  a bad URL, mode, TTL, namespace or option
    │   └── NotACacheFileError           the path holds a file that is not an agentcache database
    ├── CacheMissError (LookupError)     replay mode met a key that was never recorded
    ├── EventLoopConflictError           a second event loop used a cache (or store) while the
    │   (RuntimeError)                   first, in another thread, is still running
    └── BackendError                     the store failed (translated from its driver's error)
        └── BackendUnavailableError      the store cannot be reached or opened at all
            └── StoreMissingError        replay mode found no store to read (nothing is created)

    AgentCacheWarning (UserWarning)      a store failure that was survived (fail-open), an
                                         unstorable value, a corrupt entry that was dropped

Exceptions raised by the user's own ``call_fn`` are never wrapped: they pass through unchanged.
"""

from __future__ import annotations

__all__ = [
    "AgentCacheError",
    "AgentCacheWarning",
    "BackendError",
    "BackendUnavailableError",
    "CacheMissError",
    "ConfigurationError",
    "EventLoopConflictError",
    "KeyMaterialError",
    "NotACacheFileError",
    "StoreMissingError",
    "UnstorableValueError",
]


class AgentCacheError(Exception):
    """Base class of every error agentcache raises on its own account."""


class KeyMaterialError(AgentCacheError, TypeError):
    """Key material that cannot be canonicalised; names the type and the path inside the key."""


class UnstorableValueError(AgentCacheError, TypeError):
    """A value the codec cannot store faithfully; names the type and the fix (``value_type=``)."""


class ConfigurationError(AgentCacheError, ValueError):
    """A bad URL, mode, TTL, namespace or option; the message says what to pass instead."""


class NotACacheFileError(ConfigurationError):
    """The configured path holds a file that agentcache did not create; it is left untouched."""


class CacheMissError(AgentCacheError, LookupError):
    """Replay mode met a key that was never recorded; nothing was called.

    ``key`` is the stored key that missed and ``material`` the key material it was derived from.
    ``explanation`` is filled in where the cache can tell which recorded entry is nearest.
    """

    def __init__(self, key: str, material: object = None, explanation: str | None = None) -> None:
        self.key = key
        self.material = material
        self.explanation = explanation
        message = f"replay mode: no recorded entry for {key}"
        if explanation:
            message = f"{message}\n{explanation}"
        super().__init__(message)


class EventLoopConflictError(AgentCacheError, RuntimeError):
    """A cache or store was used from a second event loop while the first one still runs.

    Its connections, batches and pending calls belong to the first loop; one instance serves one
    running loop at a time (loops that follow each other, ``asyncio.run`` after ``asyncio.run``,
    are fine). Nothing was done for the refused call: create one ``AgentCache`` per thread or
    event loop (instances on one ``sqlite:///`` or ``redis://`` URL share their entries).
    """


class BackendError(AgentCacheError):
    """The store failed; the driver's exception is the ``__cause__``."""


class BackendUnavailableError(BackendError):
    """The store cannot be reached or opened (folder not creatable, server down...)."""


class StoreMissingError(BackendUnavailableError):
    """A store opened only to be read (replay mode) does not exist; nothing was created."""


class AgentCacheWarning(UserWarning):
    """A problem agentcache survived: a store outage it failed open on, a value it could not store."""
