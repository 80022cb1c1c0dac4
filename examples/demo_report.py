"""What the two demo scripts share: running one pass in a fresh process, and the results table."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any


def run_in_fresh_process(script: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``script --child`` with the same sizes in a new interpreter; return its JSON result."""
    command = [sys.executable, script, "--child", f"--cases={args.cases}"]
    command += [f"--latency={args.latency}", f"--concurrency={args.concurrency}"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the figures right-aligned."""
    table = [tuple(header), *map(tuple, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
