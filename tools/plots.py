"""Draw the documentation's charts from measured results (``make plots``); never edit them by hand.

- ``docs/assets/demo.png``: hit rate and dollars saved over the demo's two runs, from
  ``docs/assets/demo.json`` (written by ``examples/eval_suite.py --json``).
- ``docs/assets/ratios.png``: agentcache against the baseline of each core benchmark whose ratio is a
  number, from ``benchmarks/results/core.json`` (written by ``make bench``).
"""

from __future__ import annotations

import json
import sys
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


def ratio_chart(rows: list[dict[str, Any]], machine: str, out: Path) -> None:
    """One horizontal bar per benchmark with a numeric ratio (log scale: 1 is the baseline)."""
    numeric = [r for r in rows if isinstance(r["ratio"], (int, float)) and not isinstance(r["ratio"], bool)]
    numeric = [r for r in numeric if r["ratio"] > 0]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(numeric) + 1.2))
    colors = ["#2a7" if r["met"] else "#c64" if r["met"] is False else "#9ab" for r in numeric]
    ax.barh([r["name"] for r in numeric], [r["ratio"] for r in numeric], color=colors)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio to the baseline measured in the same run (median of rounds)")
    ax.set_title("make bench: green met its target, red did not, grey has none", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    fig.text(0.01, 0.01, machine.strip("_"), fontsize=7, color="#666")
    fig.tight_layout()
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
