"""``python -m benchmarks.scale [--max-entries N] [--quick]``: grow one store, measure at each size."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from ..machine import describe
from . import report
from .probe import L1_BOUND, Point, fill, measure_point, query_plans

RESULTS = Path(__file__).resolve().parent.parent / "results"
WRITES_BASE = 50_000_000  # workload indices for entries written during measurement


async def run(
    sizes: list[int], samples: int, repeats: int, scratch: Path
) -> tuple[list[Point], list[tuple[str, str]], float]:
    """Grow the store through ``sizes``, measuring at each."""
    path = scratch / "scale.db"
    points: list[Point] = []
    filled = 0
    fill_seconds = 0.0
    for n, size in enumerate(sizes):
        print(f"filling to {size:,} entries...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        await fill(path, filled, size)
        fill_seconds += time.perf_counter() - start
        filled = size
        print(f"measuring at {size:,}...", file=sys.stderr, flush=True)
        point = await measure_point(path, size, WRITES_BASE + n * 100_000, samples, repeats)
        point.extra["fill_seconds"] = time.perf_counter() - start
        points.append(point)
    return points, query_plans(path), fill_seconds


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, write the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument(
        "--max-entries",
        type=int,
        default=100_000,
        help="largest size (default 100,000; 1000000 adds the 1M point, several minutes more)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run that tests the harness")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true", help="redraw scale.md and scale.png from scale.json")
    args = parser.parse_args(argv)
    if args.replot:
        data = json.loads((args.out / "scale.json").read_text())
        points = [Point(**p) for p in data["points"]]
        plans = [tuple(p) for p in data["plans"]]
        (args.out / "scale.md").write_text(report.markdown(points, plans, data["header"]))
        report.chart(points, args.out / "scale.png")
        return 0
    if args.quick:
        sizes, samples, repeats = [500, 2_000], 100, 2
    else:
        sizes = [s for s in (10_000, 100_000, 1_000_000) if s <= args.max_entries]
        samples, repeats = 2_000, 5
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentcache-scale-") as scratch:
        points, plans, _fill = asyncio.run(run(sizes, samples, repeats, Path(scratch)))
    elapsed = time.perf_counter() - started
    header = [
        *describe(),
        "",
        f"One SQLite store grown through {', '.join(f'{s:,}' for s in sizes)} entries of the peers "
        f"workload (~2 KB prompts, ~1 KB answers); L1 bound {L1_BOUND:,}. Hit latency: "
        f"{samples:,} sequential get_or_call per repeat x {repeats} repeats on a fresh cache "
        f"(cold L1), keys drawn across the whole store. Whole run: {elapsed:.0f} s.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(report.markdown(points, plans, header))
    data = {"header": header, "points": [asdict(p) for p in points], "plans": plans}
    (args.out / "scale.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    written = [args.out / "scale.md", args.out / "scale.json"]
    try:
        report.chart(points, args.out / "scale.png")
        written.append(args.out / "scale.png")
    except ImportError:
        pass
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
