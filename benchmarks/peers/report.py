"""Turn a peers run into results/peers.md (tables), peers.png (one panel per row) and peers.json."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .results import Result, Row

__all__ = ["chart", "markdown", "targets", "write"]


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _name(result: Result) -> str:
    return f"**{result.name}**" if result.agentcache else result.name


def _table(row: Row) -> list[str]:
    identical = row.key == "identical"
    head = "| implementation | median | spread (min–max) | × baseline |"
    rule = "| --- | ---: | ---: | ---: |"
    if identical:
        head += " upstream calls |"
        rule += " ---: |"
    lines = [f"### {row.title} ({row.unit}, lower is better)", ""]
    if row.explain:
        lines += [row.explain + ".", ""]
    lines += [head + " note |", rule + " --- |"]
    for result in row.results:
        sample = result.sample
        note = result.note
        if result.blocks_loop and "blocks" not in note:
            note = f"{note}; blocks the event loop".lstrip("; ")
        if result.error:
            note = f"{note}; {result.error}".lstrip("; ")
        if sample is None:
            cells = ["—", "—", "—"]
        else:
            ratio = row.ratio(result)
            spread = "—" if len(sample.values) < 2 else f"{_fmt(sample.low)}–{_fmt(sample.high)}"
            cells = [_fmt(sample.median), spread, "—" if ratio is None else f"{ratio:.2f}×"]
        if identical:
            calls = result.extra.get("upstream_calls", [])
            cells.append("—" if not calls else _calls(calls))
        lines.append(f"| {_name(result)} | " + " | ".join(cells) + f" | {note} |")
    return [*lines, ""]


def _calls(calls: Sequence[int]) -> str:
    low, high = min(calls), max(calls)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def _find(rows: Sequence[Row], key: str, name: str) -> Result | None:
    for row in rows:
        if row.key == key:
            return next((r for r in row.results if r.name == name and r.values), None)
    return None


def targets(rows: Sequence[Row], follower: dict[str, Any] | None) -> list[tuple[str, str, bool | None]]:
    """DESIGN §8 targets: (target, measured, met?); met is None when it could not be measured."""
    out: list[tuple[str, str, bool | None]] = []

    def median(key: str, name: str) -> float | None:
        found = _find(rows, key, name)
        return None if found is None or found.sample is None else found.sample.median

    l1 = median("memory_hits", "agentcache sqlite, L1 hit (get_or_call)")
    floor = median("memory_hits", "dict + sha256 per op")
    if l1 is not None and floor is not None:
        out.append(
            ("L1 hit via get_or_call within 1.5× of dict + sha256", f"{l1 / floor:.2f}×", l1 / floor <= 1.5)
        )
    conc = median("hits_conc", "agentcache sqlite://")
    one = median("hits_seq", "aiosqlite, one query per op")
    if conc is not None and one is not None:
        out.append(
            (
                "1,000 concurrent cold-L1 SQLite hits ≥ 10× the throughput of one aiosqlite query per hit",
                f"{one / conc:.1f}×",
                one / conc >= 10,
            )
        )
    misses = median("writes_conc", "agentcache get_or_call misses (instant call)")
    batched = median("writes_conc", "aiosqlite executemany, 100 per commit")
    if misses is not None and batched is not None:
        out.append(
            (
                "1,000 concurrent misses ≥ the throughput of batched executemany",
                f"{batched / misses:.2f}× ({_fmt(misses)} vs {_fmt(batched)} µs/entry)",
                misses <= batched,
            )
        )
    if follower is not None:
        calls = follower["upstream_calls"]
        added = sorted(follower["us_per_follower"])[len(follower["us_per_follower"]) // 2]
        out.append(
            (
                f"{follower['callers']:,} concurrent identical calls: exactly 1 upstream call",
                _calls(calls),
                set(calls) == {1},
            )
        )
        raw = sorted(follower["us_per_follower_raw"])[len(follower["us_per_follower_raw"]) // 2]
        out.append(
            (
                "… and under 5 µs added per follower (over tasks awaiting one bare future)",
                f"{added:.2f} µs ({raw:.2f} µs per caller in all)",
                added < 5,
            )
        )
    size = next((r for r in rows if r.key == "size"), None)
    if size is not None:
        mine = next((r for r in size.results if r.agentcache and r.values), None)
        if mine is not None:
            ratio = size.ratio(mine)
            out.append(
                (
                    "store size well under the raw payload",
                    "—" if ratio is None else f"{ratio:.2f}× the raw payload",
                    None if ratio is None else ratio < 1,
                )
            )
    return out


def summary(rows: Sequence[Row]) -> list[str]:
    """One line per row: the baseline, agentcache's best entry, the best peer (and a blocking one)."""
    lines = [
        "| row | baseline | agentcache | best library peer, event loop free | best library peer "
        "that blocks the loop | best hand-written reference |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(result: Result | None, row: Row) -> str:
        if result is None or result.sample is None:
            return "—"
        ratio = row.ratio(result)
        times = "" if ratio is None or result.baseline else f" ({ratio:.1f}×)"
        calls = result.extra.get("upstream_calls")
        calls_text = f", {_calls(calls)} upstream" if calls else ""
        return f"{_fmt(result.sample.median)}{times}{calls_text}<br>{result.name}"

    def best(candidates: list[Result]) -> Result | None:
        measured = [r for r in candidates if r.sample is not None]
        if row.key == "identical":  # a peer that calls upstream 1,000 times does not do the job
            measured = [r for r in measured if set(r.extra.get("upstream_calls", [])) == {1}]
        return min(measured, key=lambda r: r.sample.median if r.sample else math.inf, default=None)

    for row in rows:
        # agentcache as configured by default (the full tables show the other settings too).
        ours = [r for r in row.results if r.agentcache and "store_key_material" not in r.name]
        others = [r for r in row.results if not r.agentcache and not r.baseline]
        peers = [r for r in others if not r.reference]
        lines.append(
            f"| {row.title} ({row.unit}) | {cell(row.baseline(), row)} | "
            f"{cell(best(ours), row)} | "
            f"{cell(best([r for r in peers if not r.blocks_loop]), row)} | "
            f"{cell(best([r for r in peers if r.blocks_loop]), row)} | "
            f"{cell(best([r for r in others if r.reference]), row)} |"
        )
    return lines


def markdown(rows: Sequence[Row], follower: dict[str, Any] | None, header: Sequence[str]) -> str:
    """The whole report as markdown."""
    lines = ["# agentcache vs peers", "", *header, ""]
    found = targets(rows, follower)
    if found:
        lines += ["## DESIGN §8 targets", "", "| target | measured | met |", "| --- | --- | --- |"]
        for target, measured, met in found:
            lines.append(f"| {target} | {measured} | {'—' if met is None else 'yes' if met else '**no**'} |")
        lines.append("")
    lines += ["## Summary", "", *summary(rows), ""]
    lines += [
        "## Rows",
        "",
        "Ratios are against the row's baseline, measured in the same run; **bold** rows are agentcache.",
        "",
    ]
    for row in rows:
        lines += _table(row)
    return "\n".join(lines)


def chart(rows: Sequence[Row], path: Path, title: str) -> None:
    """One horizontal-bar panel per row: medians, best-to-worst whiskers, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(16, 4.2 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, rows, strict=False):
        measured = [r for r in row.results if r.sample is not None]
        names = [_label(r, row) for r in measured]
        medians = [r.sample.median for r in measured if r.sample]
        lows = [m - r.sample.low for m, r in zip(medians, measured, strict=True) if r.sample]
        highs = [r.sample.high - m for m, r in zip(medians, measured, strict=True) if r.sample]
        colors = [_color(r) for r in measured]
        y = range(len(measured))
        bars = ax.barh(list(y), medians, xerr=[lows, highs], color=colors, capsize=3)
        for bar, result in zip(bars, measured, strict=True):
            if result.blocks_loop:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
        ax.set_yticks(list(y), names, fontsize=8)
        ax.invert_yaxis()
        if row.key != "identical":  # wall times near 50 ms read better on a linear axis
            ax.set_xscale("log")
        ax.set_title(f"{row.title}\n{row.unit}, lower is better", fontsize=10)
        top = max(r.sample.high for r in measured if r.sample) if measured else 1
        ax.set_xlim(right=top * (1.6 if row.key == "identical" else 8))
        for i, (median, result) in enumerate(zip(medians, measured, strict=True)):
            text = _fmt(median)
            calls = result.extra.get("upstream_calls")
            if calls:
                text += f"  ({_calls(calls)} upstream)"
            gap = top * 0.02 if row.key == "identical" else median * 0.15
            ax.text(median + highs[i] + gap, i, text, va="center", fontsize=8)
        ax.grid(axis="x", which="both", alpha=0.25)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.suptitle(
        title
        + "\nred: agentcache   blue: library peers   light blue: hand-written   grey: the row's baseline   "
        "hatched: blocks the event loop\n"
        "whiskers: best–worst repeat   (n.n×): ratio to the baseline",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _color(result: Result) -> str:
    if result.agentcache:
        return "#d62728"
    if result.baseline:
        return "#7f7f7f"
    return "#9ecae1" if result.reference else "#1f77b4"


def _label(result: Result, row: Row) -> str:
    name = result.name if len(result.name) <= 42 else result.name[:40] + "…"
    ratio = row.ratio(result)
    return name if ratio is None or result.baseline else f"{name}  ({ratio:.1f}×)"


def write(
    out: Path, rows: Sequence[Row], follower: dict[str, Any] | None, header: Sequence[str]
) -> list[Path]:
    """Write peers.md, peers.json and (when matplotlib is installed) peers.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "peers.md", out / "peers.json"]
    written[0].write_text(markdown(rows, follower, header))
    data = {"header": list(header), "follower": follower, "rows": [r.to_json() for r in rows]}
    written[1].write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return written
    chart(rows, out / "peers.png", "agentcache vs peers — " + header[0].split(";")[0].replace("_", ""))
    return [*written, out / "peers.png"]
