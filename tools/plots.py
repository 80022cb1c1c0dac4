"""Draw the documentation's charts from measured results (``make plots``); never edit them by hand.

- ``docs/assets/demo.png``: hit rate and dollars saved over the demo's two runs, from
  ``docs/assets/demo.json`` (written by ``examples/eval_suite.py --json``).
- ``docs/assets/ratios.png``: agentcache against the baseline of each core benchmark with a target,
  from ``benchmarks/results/core.json`` (written by ``make bench``).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "docs" / "assets"
DEMO = ASSETS / "demo.json"
CORE = ROOT / "benchmarks" / "results" / "core.json"


def demo_chart(runs: list[dict[str, Any]], out: Path) -> None:
    """Two panels, one bar per run: the share of lookups served without a call, and $ saved."""
    names = [r["run"] for r in runs]
    fig, (rate, saved) = plt.subplots(1, 2, figsize=(9, 3.2))
    served = [100 * (r["hits"] + r["coalesced"]) / (r["hits"] + r["coalesced"] + r["misses"]) for r in runs]
    rate.bar(names, served, color=["#9ab", "#2a7"])
    rate.set_ylim(0, 100)
    rate.set_ylabel("lookups served without a call (%)")
    calls = [f"{r['upstream_calls']:,} upstream calls" for r in runs]
    for i, label in enumerate(calls):
        rate.annotate(label, (i, 4), ha="center", color="white", fontsize=9)
    saved.bar(names, [r["saved_cost"] for r in runs], color=["#9ab", "#2a7"])
    saved.set_ylabel("$ saved")
    fig.suptitle("make demo: the eval suite, run twice (the second time in a fresh process)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _target(text: object) -> tuple[str, float] | None:
    """``("<=", 1.5)`` from a target such as ``"≤ 1.5x baseline time"``; None if it has no bound."""
    match = re.search(r"([≤≥<>])\s*([0-9.]+)", str(text or ""))
    if match is None:
        return None
    return ("<=" if match.group(1) in "≤<" else ">="), float(match.group(2))


def ratio_chart(rows: list[dict[str, Any]], machine: str, out: Path) -> None:
    """One bar per benchmark that has a target: its ratio to the baseline, and the target's mark."""
    bounded = []
    for row in rows:
        target = _target(row["target"])
        ratio = row["ratio"]
        if (
            target is not None
            and isinstance(ratio, (int, float))
            and not isinstance(ratio, bool)
            and ratio > 0
        ):
            bounded.append((row, target))
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(bounded) + 1.6))
    names = [f"{row['name']}\n({'lower' if op == '<=' else 'higher'} is better)" for row, (op, _) in bounded]
    colors = ["#2a7" if row["met"] else "#c64" for row, _ in bounded]
    ax.barh(names, [row["ratio"] for row, _ in bounded], color=colors)
    for i, (_, (_, bound)) in enumerate(bounded):
        ax.plot([bound, bound], [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="#888", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio to the baseline of the same run (median of rounds); black mark: the target")
    ax.set_title("make bench: green met its target, red did not", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    fig.text(0.01, 0.01, textwrap.fill(machine.strip("_"), 150), fontsize=6, color="#666")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    ASSETS.mkdir(parents=True, exist_ok=True)
    drawn = 0
    for source, draw in ((DEMO, "demo"), (CORE, "ratios")):
        if not source.exists():
            print(f"skipped {draw}.png: {source.relative_to(ROOT)} is missing", file=sys.stderr)
            continue
        data = json.loads(source.read_text(encoding="utf-8"))
        if draw == "demo":
            demo_chart(data["runs"], ASSETS / "demo.png")
        else:
            ratio_chart(data["rows"], data["machine"], ASSETS / "ratios.png")
        print(f"wrote docs/assets/{draw}.png")
        drawn += 1
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
