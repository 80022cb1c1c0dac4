"""How the command writes: rich on a terminal (tables, progress on stderr), plain text in a pipe."""

from __future__ import annotations

import io

from agentcache.cli._output import Output, human_bytes


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_style_is_plain_in_a_pipe_and_rich_on_a_terminal() -> None:
    assert not Output("auto", io.StringIO(), io.StringIO()).rich
    assert Output("auto", Terminal(), io.StringIO()).rich
    assert not Output("plain", Terminal(), Terminal()).rich


def test_plain_tables_align_columns_and_right_align_numbers() -> None:
    out = io.StringIO()
    Output("plain", out, io.StringIO()).table(
        ["name", "hits"], [["a", "5"], ["longer", "120"]], numeric=["hits"]
    )
    assert out.getvalue().splitlines() == ["name    hits", "a          5", "longer   120"]


def test_progress_is_drawn_on_a_terminal_only() -> None:
    err = Terminal()
    with Output("rich", Terminal(), err).progress("exporting", 3) as advance:
        for _ in range(3):
            advance(1)
    assert "exporting" in err.getvalue()

    quiet = io.StringIO()
    with Output("rich", Terminal(), quiet).progress("exporting", 3) as advance:
        advance(3)
    assert quiet.getvalue() == ""  # stderr is a pipe: no bar into logs


def test_status_spinner_stays_out_of_pipes() -> None:
    err = io.StringIO()
    with Output("plain", io.StringIO(), err).status("vacuuming"):
        pass
    assert err.getvalue() == ""


def test_sizes_read_in_powers_of_a_thousand() -> None:
    assert human_bytes(999) == "999 B"
    assert human_bytes(1500) == "1.5 kB"
    assert human_bytes(2_500_000) == "2.5 MB"
    assert human_bytes(7_200_000_000_000) == "7200.0 GB"
