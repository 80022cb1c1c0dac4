"""``python -m benchmarks.peers [--quick] [--out DIR]``: run every row, write the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ..machine import describe
from . import report
from .coldopen import cold_open_and_size
from .results import Row
from .rows import Config, Runner, log
from .stall import loop_stall

RESULTS = Path(__file__).resolve().parent.parent / "results"


async def run(config: Config, out: Path, scratch: Path) -> list[Path]:
    """Every row, in one process and one event loop, then the report."""
    started = time.perf_counter()
    runner = Runner(config, scratch)
    log("memory hits...")
    rows = [await runner.memory_hits()]
    log("persistent stores...")
    rows += await runner.persistent()
    log("identical calls...")
    rows.append(await runner.identical_calls())
    log("event-loop stall...")
    rows.append(await loop_stall(runner))
    follower = await runner.follower_cost(callers=10 * config.concurrency)
    log("cold open and size...")
    rows += await cold_open_and_size(runner)
    elapsed = time.perf_counter() - started
    header = [
        *describe(),
        "",
        f"Workload: {config.keys:,} keys, ~2 KB prompts sharing a 1.7 KB system prompt, ~1 KB "
        f"answers; medians of {config.repeats} repeats, spread = best–worst repeat. "
        f"Sequential rows read {config.sequential:,} / write {config.writes:,} entries per repeat; "
        f"concurrent rows run {config.concurrency:,} tasks at once. Whole run: {elapsed:.0f} s "
        "(`make bench-peers`).",
    ]
    return report.write(out, rows, follower, header)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print where the results went."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny run that tests the harness")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the report")
    parser.add_argument(
        "--rerender", action="store_true", help="redraw peers.md and peers.png from peers.json"
    )
    args = parser.parse_args(argv)
    if args.rerender:
        data = json.loads((args.out / "peers.json").read_text())
        rows = [Row.from_json(r) for r in data["rows"]]
        report.write(args.out, rows, data["follower"], data["header"])
        return 0
    config = Config.quick() if args.quick else Config()
    if args.repeats:
        config = Config(**{**config.__dict__, "repeats": args.repeats})
    # The peers' deprecation chatter (LangChain, mostly) is not a result.
    warnings.simplefilter("ignore")
    warnings.showwarning = lambda *args, **kwargs: None  # LangChain re-enables its own at import
    with tempfile.TemporaryDirectory(prefix="agentcache-peers-") as scratch:
        written = asyncio.run(run(config, args.out, Path(scratch)))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
