"""How the ``agentcache`` command writes: rich tables and progress on a terminal, plain text when piped.

``Output`` is the only place that knows about ``rich``. In ``rich`` style, tables are drawn and long
work shows a progress bar on stderr (only when stderr is a terminal too, so logs stay clean). In
``plain`` style, tables are columns separated by two spaces with a header line, nothing is
coloured, and there are no progress bars: what a script or ``grep`` wants. ``auto`` picks ``rich``
when stdout is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

__all__ = ["Output", "human_bytes"]

STYLES = ("auto", "rich", "plain")


class Output:
    """Writes results to ``out`` and messages to ``err`` in the chosen style."""

    def __init__(self, style: str = "auto", out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self.rich = style == "rich" or (style == "auto" and _isatty(self.out))
        self._console = Console(file=self.out, highlight=False, soft_wrap=True)
        self._err_console = Console(file=self.err, highlight=False, soft_wrap=True)
        # Progress bars only where a person watches; never into a file or a pipe.
        self._live = self.rich and _isatty(self.err)

    def line(self, text: str = "", *, style: str | None = None) -> None:
        """One line of text (coloured in rich style when ``style`` is given)."""
        if self.rich:
            self._console.print(text, style=style, markup=False)
        else:
            self.out.write(text + "\n")

    def json(self, value: Any) -> None:
        """A JSON document, indented (both styles: it is for scripts)."""
        self.out.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")

    def message(self, text: str, *, style: str | None = None) -> None:
        """A message for the person (stderr), e.g. a summary of what was done."""
        if self.rich:
            self._err_console.print(text, style=style, markup=False)
        else:
            self.err.write(text + "\n")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        title: str | None = None,
        numeric: Sequence[str] = (),
    ) -> None:
        """Rows under column headers; ``numeric`` columns are right-aligned."""
        if self.rich:
            table = Table(
                title=title,
                title_justify="left",
                header_style="bold",
                box=box.SIMPLE_HEAD,
                pad_edge=False,
                collapse_padding=True,
            )
            for i, name in enumerate(columns):
                # The first column names the row (a key): never cut or wrap it.
                table.add_column(
                    name,
                    justify="right" if name in numeric else "left",
                    overflow="fold",  # a narrow terminal wraps a cell, never cuts it
                    no_wrap=i == 0,
                    min_width=None if i else max([len(name), *(len(row[0]) for row in rows)]),
                )
            for row in rows:
                table.add_row(*row)
            self._console.print(table)
            return
        if title:
            self.out.write(f"{title}\n")
        widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(columns)]
        for cells in [list(columns), *rows]:
            padded = [
                cell.rjust(width) if name in numeric else cell.ljust(width)
                for cell, width, name in zip(cells, widths, columns, strict=True)
            ]
            self.out.write("  ".join(padded).rstrip() + "\n")

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on a terminal (a no-op otherwise); yields ``advance(n)``."""
        if not self._live:
            yield lambda n: None
            return
        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total is not None else TextColumn("{task.completed}"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=self._err_console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    @contextmanager
    def status(self, description: str) -> Iterator[None]:
        """A spinner on a terminal while one long step runs (a no-op otherwise)."""
        if not self._live:
            yield
            return
        with self._err_console.status(description):
            yield


def human_bytes(size: int | float) -> str:
    """``1536`` -> ``"1.5 kB"`` (powers of 1000, as ``--max-size`` reads them)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
