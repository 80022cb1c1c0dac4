"""The result records of a peers run: one Row per question, one Result per contender."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..measure import Sample

__all__ = ["Result", "Row"]


@dataclass
class Result:
    """One contender's answer to a row: its repeats, or why it has none."""

    name: str
    values: list[float] = field(default_factory=list)
    note: str = ""
    agentcache: bool = False
    baseline: bool = False
    blocks_loop: bool = False
    reference: bool = False  # hand-written code, not a library a user would install
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, sample: Sample, **kwargs: Any) -> Result:
        """A measured result."""
        return cls(name, list(sample.values), **kwargs)

    @property
    def sample(self) -> Sample | None:
        """The repeats, or None when the contender did not run."""
        return Sample(tuple(self.values)) if self.values else None


@dataclass
class Row:
    """A question every contender answers in the same unit; lower is better."""

    key: str
    title: str
    unit: str
    results: list[Result] = field(default_factory=list)
    explain: str = ""

    def baseline(self) -> Result | None:
        """The result the ratios of this row are taken against."""
        return next((r for r in self.results if r.baseline and r.values), None)

    def ratio(self, result: Result) -> float | None:
        """``result``'s median over the baseline's (None when either is missing)."""
        base = self.baseline()
        mine = result.sample
        if base is None or mine is None or base.sample is None or base.sample.median == 0:
            return None
        return mine.median / base.sample.median

    def to_json(self) -> dict[str, Any]:
        """Plain data, for results/peers.json."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        """The inverse of ``to_json``."""
        results = [Result(**r) for r in data.pop("results")]
        return cls(**data, results=results)
