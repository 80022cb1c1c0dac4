"""Repeat a measurement, keep every repeat, and summarise it as median and spread."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Sample", "arepeat", "interleaved", "percentile"]


@dataclass(frozen=True)
class Sample:
    """The repeats of one measurement, in the unit of its row (e.g. µs per op)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The figure that is reported."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The best repeat."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The worst repeat."""
        return max(self.values)


async def arepeat(repeats: int, once: Callable[[], Awaitable[float]]) -> Sample:
    """Run ``once`` ``repeats`` times (collecting garbage between runs, not during them)."""
    values = []
    for _ in range(repeats):
        gc.collect()
        values.append(await once())
    return Sample(tuple(values))


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = math.ceil(fraction * len(sorted_values)) - 1
    return sorted_values[max(0, min(len(sorted_values) - 1, rank))]


def now() -> float:
    """The clock every benchmark uses."""
    return time.perf_counter()


async def interleaved(repeats: int, jobs: dict[str, Callable[[], Awaitable[float]]]) -> dict[str, Sample]:
    """Run every job once per round, ``repeats`` rounds: load that drifts during the run (a shared
    machine) then weighs on every contender alike instead of on whoever ran during the burst."""
    values: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, once in jobs.items():
            gc.collect()
            values[name].append(await once())
    return {name: Sample(tuple(found)) for name, found in values.items()}
