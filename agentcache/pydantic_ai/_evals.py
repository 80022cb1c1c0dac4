"""pydantic-evals: which run of which case a model request is made for, and what the cache did for it.

``Dataset.evaluate(task, repeat=N)`` runs every case N times and names the runs ``"name [k/N]"``
(``source_case_name`` keeps ``"name"``), but hands the task nothing but the case's inputs: no
contextvar, span attribute or argument tells the task, its evaluators or their models which
repeat they serve. The one place that knows is pydantic-evals' function that runs one case once,
task and evaluators (``pydantic_evals.dataset._run_task_and_evaluators``, given both names).
``install`` wraps it: for the duration of each run an ``EvalRun`` sits in a context variable, so
the task, its sub-agents and tools, and the evaluators (LLM judges) see it on whichever asyncio
task they run, since child tasks copy the context they were started in. The repeat index is
pydantic-evals' own, never an arrival order: concurrent repeats (``max_concurrency``), retries and
re-runs in a fresh process find the same keys.

- Keys: a request made for repeat k (0-based) gets ``"repeat": k`` in its key (``CachedModel``);
  repeat 0, like a plain ``repeat=1`` run, gets nothing, so what was recorded without repeats
  serves the first repeat. An explicit key component rather than the cache's ``samples=`` slots:
  those are taken in arrival order and counted per process, which is what repeats must not
  depend on; the component is also visible in stored key material and in a replay miss's diff.
- Report: each run that made cached model requests gets the metrics ``agentcache.hits``,
  ``agentcache.misses`` and ``agentcache.coalesced`` (model requests of the task and of its
  evaluators). A hit reports zero usage to pydantic-ai (``hit_usage="zero"``), so replayed runs
  add no tokens and no cost to the report's metrics.

``install`` runs when ``agentcache.pydantic_ai`` is imported, if pydantic-evals is installed. A
pydantic-evals without that function gets a warning saying repeats cannot be told apart.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Final, final

from ..errors import AgentCacheWarning

__all__ = ["METRICS", "EvalRun", "current_run", "install", "run_of"]

_RUNNER = "_run_task_and_evaluators"
_NAMES = ("report_case_name", "source_case_name")
_WRAPPED = "__agentcache_eval_runs__"
_REPEAT_SUFFIX = re.compile(r" \[(\d+)/(\d+)\]\Z")
_HITS = frozenset({"l1", "store"})

METRICS: Final = ("agentcache.hits", "agentcache.misses", "agentcache.coalesced")
"""The metrics each run of a case gets in the report."""


@final
class EvalRun:
    """One run of one case: which repeat it is, and how its model requests were served.

    ``repeat`` is 0-based; ``repeats`` is the ``repeat=`` of the evaluation. ``repeat`` is the run's
    full name instead (a str) if pydantic-evals named it in a way this module does not know.
    """

    __slots__ = ("case", "coalesced", "hits", "misses", "repeat", "repeats")

    def __init__(self, case: str, repeat: int | str, repeats: int) -> None:
        self.case = case
        self.repeat = repeat
        self.repeats = repeats
        self.hits = self.misses = self.coalesced = 0

    def count(self, source: str) -> None:
        """One model request of this run was answered from ``source`` (``Fetched.source``)."""
        if source in _HITS:
            self.hits += 1
        elif source == "coalesced":
            self.coalesced += 1
        else:
            self.misses += 1

    def metrics(self) -> dict[str, int]:
        return dict(zip(METRICS, (self.hits, self.misses, self.coalesced), strict=True))

    def report(self, result: object) -> None:
        """Add this run's metrics to its ``ReportCase`` (a failed run's record has no metrics)."""
        metrics = getattr(result, "metrics", None)
        if isinstance(metrics, dict) and self.hits + self.misses + self.coalesced:
            metrics.update(self.metrics())

    def __repr__(self) -> str:
        return f"EvalRun({self.case!r}, repeat={self.repeat!r}, repeats={self.repeats})"


_CURRENT: ContextVar[EvalRun | None] = ContextVar("agentcache_eval_run", default=None)


def current_run() -> EvalRun | None:
    """The run of a pydantic-evals case this code runs for, if any."""
    return _CURRENT.get()


def run_of(report_case_name: str, source_case_name: str | None) -> EvalRun:
    """The run pydantic-evals names ``report_case_name`` (``"name [k/N]"`` for a repeat)."""
    if source_case_name is None:
        return EvalRun(report_case_name, 0, 1)
    match = _REPEAT_SUFFIX.search(report_case_name)
    if match is None or report_case_name[: match.start()] != source_case_name:
        _warn_once(
            f"pydantic-evals named a repeat {report_case_name!r}, which agentcache cannot read a "
            "repeat index from; its model requests are keyed by that name instead (repeat 1 does "
            "not reuse answers recorded without repeats)"
        )
        return EvalRun(source_case_name, report_case_name, 0)
    return EvalRun(source_case_name, int(match[1]) - 1, int(match[2]))


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, AgentCacheWarning, stacklevel=3)


def install() -> None:
    """Wrap pydantic-evals' run of one case so its model requests know their run; idempotent."""
    try:
        dataset = importlib.import_module("pydantic_evals.dataset")
    except Exception:  # not installed, or broken (then importing it fails the user's code anyway)
        return
    runner = getattr(dataset, _RUNNER, None)
    if runner is None or getattr(runner, _WRAPPED, False):
        if runner is None:
            _cannot_see_repeats(f"it has no {_RUNNER}()")
        return
    try:
        signature = inspect.signature(runner)
    except (TypeError, ValueError):
        signature = None
    if signature is None or not set(_NAMES) <= set(signature.parameters):
        _cannot_see_repeats(f"its {_RUNNER}() does not take {' and '.join(_NAMES)}")
        return
    setattr(dataset, _RUNNER, _wrapped(runner, signature))


def _wrapped(
    runner: Callable[..., Coroutine[Any, Any, Any]], signature: inspect.Signature
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(runner)
    async def run_task_and_evaluators(*args: Any, **kwargs: Any) -> Any:
        names = signature.bind(*args, **kwargs).arguments
        run = run_of(names["report_case_name"], names.get("source_case_name"))
        token = _CURRENT.set(run)
        try:
            result = await runner(*args, **kwargs)
        finally:
            _CURRENT.reset(token)
        run.report(result)
        return result

    setattr(run_task_and_evaluators, _WRAPPED, True)
    return run_task_and_evaluators


def _cannot_see_repeats(why: str) -> None:
    from importlib.metadata import version

    _warn_once(
        f"agentcache cannot tell the repeats of a pydantic-evals case apart with pydantic-evals "
        f"{version('pydantic-evals')} ({why}): Dataset.evaluate(repeat=N) would serve every repeat "
        "the same cached answer. Use a pydantic-evals version agentcache supports."
    )
