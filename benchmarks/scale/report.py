"""The scale study as markdown (one row per size, the query plans) and a six-panel PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .probe import L1_BOUND, Point

__all__ = ["chart", "markdown"]


def markdown(points: Sequence[Point], plans: Sequence[tuple[str, str]], header: Sequence[str]) -> str:
    """Tables: one row per size; then SQLite's plan for each statement."""
    lines = ["# agentcache SQLite store: cost as it grows", "", *header, ""]
    lines += [
        "| entries | hit p50 µs | hit p99 µs | concurrent hits/s | set µs (sequential) | "
        "concurrent sets/s | bytes/entry | file MiB | RSS MiB | L1 entries | open+first get ms | "
        "fresh process ms | scan() first entry ms | scan(ns) first entry ms |",
        "| " + " | ".join(["---:"] * 14) + " |",
    ]
    for p in points:
        lines.append(
            f"| {p.entries:,} | {p.hit_p50:.0f} | {p.hit_p99:.0f} | {p.hits_concurrent_per_s:,.0f} | "
            f"{p.write_seq_us:.0f} | {p.writes_concurrent_per_s:,.0f} | {p.bytes_per_entry:,.0f} | "
            f"{p.file_mib:,.0f} | {p.rss_mib:.0f} | {p.l1_entries:,} (bound {L1_BOUND:,}) | "
            f"{p.open_ms:.1f} | {p.cold_process_ms:.0f} | {p.scan_first_ms:,.1f} | "
            f"{p.scan_namespace_first_ms:,.1f} |"
        )
    lines += ["", "## Query plans (SQLite `EXPLAIN QUERY PLAN` on the store's statements)", ""]
    lines += ["| statement | plan |", "| --- | --- |"]
    lines += [f"| {name} | `{plan}` |" for name, plan in plans]
    return "\n".join(lines) + "\n"


def chart(points: Sequence[Point], path: Path) -> None:
    """Six panels against store size (log x): latency, throughput, size, memory, open, scan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [p.entries for p in points]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    panels = [
        (
            "Hit latency, cold L1 (µs)",
            [("p50", [p.hit_p50 for p in points]), ("p99", [p.hit_p99 for p in points])],
        ),
        (
            "Throughput (ops/s)",
            [
                ("1,000 concurrent hits", [p.hits_concurrent_per_s for p in points]),
                ("1,000 concurrent sets", [p.writes_concurrent_per_s for p in points]),
                ("sequential sets", [1e6 / p.write_seq_us for p in points]),
            ],
        ),
        ("Store size (bytes per entry)", [("bytes/entry", [p.bytes_per_entry for p in points])]),
        (
            "Process memory (MiB) and L1 entries / 100",
            [
                ("RSS", [p.rss_mib for p in points]),
                ("L1 entries / 100", [p.l1_entries / 100 for p in points]),
            ],
        ),
        (
            "Open (ms)",
            [
                ("open + first get, in process", [p.open_ms for p in points]),
                ("fresh process", [p.cold_process_ms for p in points]),
            ],
        ),
        (
            "Time to the first entry of a listing (ms)",
            [
                ("scan(), all namespaces", [p.scan_first_ms for p in points]),
                ("scan(namespace)", [p.scan_namespace_first_ms for p in points]),
            ],
        ),
    ]
    for ax, (title, series) in zip(axes.flat, panels, strict=True):
        for label, ys in series:
            ax.plot(x, ys, marker="o", label=label)
            for xi, yi in zip(x, ys, strict=True):
                ax.annotate(
                    f"{yi:,.0f}" if yi >= 10 else f"{yi:.2f}",
                    (xi, yi),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=8,
                )
        ax.set_xscale("log")
        if title.startswith("Time to the first entry"):  # spans four orders of magnitude
            ax.set_yscale("log")
        ax.set_xticks(x, [f"{v:,}" for v in x])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("entries in the store")
        ax.grid(alpha=0.3)
        top = max(max(ys) for _l, ys in series) or 1
        if ax.get_yscale() == "log":
            ax.set_ylim(top=top * 4)
        else:
            ax.set_ylim(bottom=0, top=top * 1.25)
        ax.legend(fontsize=8)
    fig.suptitle(
        "agentcache SQLite store: cost as the store grows (flat lines are what we want)", fontsize=12
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)
