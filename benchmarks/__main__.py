"""``python -m benchmarks [module ...] [--quick] [--out FILE]``: run the benchmarks, print one table.

With no module named, every benchmark module runs and the table is written to
``benchmarks/results/core.md`` as well (``make bench``), its rows to ``core.json`` beside it (for
``make plots``). Naming modules runs only those and prints
their table without writing it, unless ``--out`` says where. ``--quick`` shrinks every size
(``AGENTCACHE_BENCH_QUICK=1``): it checks the harness, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings
from pathlib import Path

from .runner import discover, machine, render, run_all

RESULTS = Path(__file__).resolve().parent / "results" / "core.md"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print (and write) the table; 1 if a module failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("modules", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness only")
    parser.add_argument("--out", type=Path, help=f"write the table here (default with no modules: {RESULTS})")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["AGENTCACHE_BENCH_QUICK"] = "1"
    out: Path | None = args.out or (None if args.modules or args.quick else RESULTS)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    found = discover(only=args.modules)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # third-party chatter is not a result
        outcomes = asyncio.run(run_all(found, log))
    table = render(outcomes, [machine()])
    print(table, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table, encoding="utf-8")
        rows = [{"module": o.module, **row} for o in outcomes for row in o.rows]
        out.with_suffix(".json").write_text(
            json.dumps({"machine": machine(), "rows": rows}, indent=2, default=str) + "\n"
        )
        log(f"written to {out} and {out.with_suffix('.json')}")
    return 1 if any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
