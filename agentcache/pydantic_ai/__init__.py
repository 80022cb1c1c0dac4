"""pydantic-ai integration: serve every model request of an agent from an ``AgentCache``.

``CachedModel(model, cache=cache)`` wraps one model; ``CacheCapability(cache)`` wraps whatever model
serves each request of an agent (it returns a ``CachedModel`` from ``get_wrapper_model``, so both
routes build identical keys). This is the only package of agentcache that imports pydantic_ai.

- Keys (``request_key``, public so two requests can be compared): ``KEY_SCHEMA``, the wrapped
  model's ``model_id`` and the API it speaks (model class, system, base URL without credentials),
  the messages as sent minus per-run noise (timestamps, run ids; tool-call ids and provider
  output-item ids renamed in order of appearance), the merged settings minus transport settings
  (``TRANSPORT_SETTINGS``) and prompt-caching hints, and the request parameters. The rules, field
  by field, are in ``agentcache/pydantic_ai/_keys.py``.
- Values: only ``state == 'complete'`` responses are stored (a streamed one only when its stream
  ran to the end), as pydantic-ai's own JSON; every hit is a fresh ``ModelResponse`` (the agent
  mutates responses in place). A hit reports zero usage to pydantic-ai by default and puts what it
  saved in ``response.metadata['agentcache']``; ``hit_usage='replay'`` keeps the stored usage.
- Streams: the caller that makes the upstream call streams it live; other callers of the same key
  in this process (same cache, ``samples=1``) follow the same live stream from its first event;
  hits are replayed as a stream of text deltas, optionally paced (``pace`` seconds between deltas).
- pydantic-evals (``_evals``): ``Dataset.evaluate(task, repeat=N)`` with a cached agent (or an
  ``LLMJudge`` with a ``CachedModel``) keeps one answer per repeat: repeat k of a case is served
  the k-th recorded answer on every re-run, whatever the concurrency; repeat 0 uses the plain key.
  Each run of a case reports the metrics ``agentcache.hits``, ``agentcache.misses`` and
  ``agentcache.coalesced``; hits add no tokens and no cost to the report.
"""

from __future__ import annotations

import sys

try:
    import pydantic_ai  # noqa: F401 - fail here, with the extra to install
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    # The extra cannot be installed on 3.10 (pydantic-ai-slim needs 3.11): say so rather than
    # send the user to a pip command that will refuse.
    python = "" if sys.version_info >= (3, 11) else " on Python 3.11 or later (pydantic-ai needs it)"
    raise ImportError(
        f'agentcache.pydantic_ai needs pydantic-ai: pip install "agentcache[pydantic-ai]"{python}'
    ) from exc

from . import _evals
from ._capability import CacheCapability
from ._keys import KEY_SCHEMA, TRANSPORT_SETTINGS, request_key
from ._model import CachedModel

_evals.install()  # only if pydantic-evals is installed: repeats of an eval case get their own keys

__all__ = [
    "KEY_SCHEMA",
    "TRANSPORT_SETTINGS",
    "CacheCapability",
    "CachedModel",
    "request_key",
]
