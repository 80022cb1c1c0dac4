"""Repeat a measurement, keep every repeat, and summarise it as median and spread."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Sample", "arepeat", "percentile"]


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
