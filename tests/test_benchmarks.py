"""The benchmark harnesses measure what they claim: the workload, the statistics, the checks, the reports."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from benchmarks import workload
from benchmarks.measure import Sample, interleaved, percentile
from benchmarks.peers import report
from benchmarks.peers.flights import FLIGHT_CONTENDERS
from benchmarks.peers.persistent import DictBaseline
from benchmarks.peers.results import Result, Row
from benchmarks.peers.rows import Config, Runner, _reads, _writes


def test_workload_prompts_share_the_system_prompt_and_have_the_stated_sizes() -> None:
    prompts = [workload.prompt(i) for i in range(20)]
    assert len(workload.SYSTEM_PROMPT) == 1700
    assert all(p.startswith(workload.SYSTEM_PROMPT) for p in prompts)
    assert all(1900 <= len(p.encode()) <= 2100 for p in prompts)
    assert len(set(prompts)) == len(prompts)
    assert all(len(workload.answer(i)) == 1024 for i in range(20))


def test_workload_answers_compress_like_prose_not_like_noise_or_repetition() -> None:
    ratios = [len(a) / len(zlib.compress(a.encode(), 6)) for a in map(workload.answer, range(50))]
    assert all(1.5 < r < 3.0 for r in ratios), ratios


def test_workload_is_the_same_in_every_process() -> None:
    # A fixed digest: the subprocesses of the cold-open row must regenerate identical prompts.
    assert workload.hashed_key(workload.prompt(3)).startswith("58a42bcb51bc")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


async def test_interleaved_gives_every_job_a_turn_in_each_round() -> None:
    order: list[str] = []

    def job(name: str, value: float) -> Any:
        async def once() -> float:
            order.append(name)
            return value

        return once

    samples = await interleaved(3, {"a": job("a", 1.0), "b": job("b", 2.0)})
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert samples["a"].values == (1.0, 1.0, 1.0)
    assert samples["b"].median == 2.0


def test_row_ratio_divides_by_the_baseline_median_and_skips_the_unmeasured() -> None:
    row = Row("r", "t", "µs/op")
    row.results = [
        Result("base", [2.0, 4.0, 3.0], baseline=True),
        Result("fast", [1.5, 1.5, 9.0]),
        Result("absent", error="not installed: x"),
    ]
    assert row.ratio(row.results[1]) == pytest.approx(0.5)
    assert row.ratio(row.results[2]) is None
    assert Sample((3.0, 1.0, 2.0)).low == 1.0


class _Forgetful(DictBaseline):
    """A store that drops what it is given: a benchmark of it would time nothing but misses."""

    name = "forgetful"

    async def set(self, prompt: str, value: str) -> None:
        return None


async def test_a_store_that_misses_fails_the_read_row_instead_of_looking_fast(tmp_path: Path) -> None:
    store = _Forgetful(tmp_path)
    pairs = list(workload.items(0, 3))
    await store.fill(pairs)
    with pytest.raises(AssertionError, match="wrong answer"):
        await _reads(store, pairs, concurrent=False)


async def test_a_store_that_loses_writes_fails_the_write_row(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="not read back"):
        await _writes(_Forgetful(tmp_path), list(workload.items(0, 3)), concurrent=True)


async def test_identical_calls_row_counts_upstream_calls_per_contender(tmp_path: Path) -> None:
    runner = Runner(Config(keys=5, repeats=2, concurrency=20), tmp_path)
    wanted = {"dict check-then-call", "agentcache memory://"}
    row = await runner.identical_calls([c for c in FLIGHT_CONTENDERS if c.name in wanted])
    by_name = {r.name: r for r in row.results}
    assert by_name["dict check-then-call"].extra["upstream_calls"] == [20, 20]
    agentcache = by_name["agentcache memory://"]
    assert agentcache.extra["upstream_calls"] == [1, 1]
    assert len(agentcache.values) == 2  # one wall time per round


def _rows() -> list[Row]:
    hits = Row("memory_hits", "Hits", "µs/op")
    hits.results = [
        Result("dict + sha256 per op", [2.0, 2.2], baseline=True),
        Result("agentcache sqlite, L1 hit (get_or_call)", [2.5, 2.6], agentcache=True),
        Result("diskcache, on the loop", [1.0, 1.1], blocks_loop=True),
        Result("missing peer", error="not installed: peer"),
    ]
    flights = Row("identical", "Calls", "ms wall")
    flights.results = [
        Result("dict check-then-call", [51.0, 52.0], baseline=True, extra={"upstream_calls": [9, 9]}),
        Result("agentcache memory://", [51.0, 51.5], agentcache=True, extra={"upstream_calls": [1, 1]}),
    ]
    return [hits, flights]


def test_report_tables_mark_agentcache_blocking_and_missing_peers(tmp_path: Path) -> None:
    written = report.write(tmp_path, _rows(), None, ["_Run today_; on a test machine"])
    text = (tmp_path / "peers.md").read_text()
    assert "| **agentcache sqlite, L1 hit (get_or_call)** | 2.55 | 2.50–2.60 | 1.21× |" in text
    assert "blocks the event loop" in text
    assert "| missing peer | — | — | — | not installed: peer |" in text
    assert "| 1 |" in text  # the upstream-calls column
    assert "| L1 hit via get_or_call within 1.5× of dict + sha256 | 1.21× | yes |" in text
    data = json.loads((tmp_path / "peers.json").read_text())
    assert Row.from_json(data["rows"][0]).results[1].values == [2.5, 2.6]
    if (tmp_path / "peers.png") in written:  # matplotlib comes with the peers extra only
        assert (tmp_path / "peers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_scale_probe_keeps_the_l1_within_its_bound_and_hits_use_the_key_index(
    tmp_path: Path,
) -> None:
    from benchmarks.scale.probe import fill, measure_point, query_plans

    path = tmp_path / "scale.db"
    await fill(path, 0, 300)
    point = await measure_point(path, 300, fresh=10_000, samples=20, repeats=1, l1_bound=100)
    assert point.l1_entries == 100  # 200 distinct keys went through an L1 of 100
    assert point.extra["entries_after_writes"] == 300 + 200 + 1_000
    assert point.hit_p50 <= point.hit_p99
    assert point.bytes_per_entry > 0
    plans = dict(query_plans(path))
    assert "USING INDEX" in plans["hit (get_many)"]
    assert "USING INDEX" in plans["hit bookkeeping (note_hit flush)"]


def test_summary_compares_with_library_peers_that_do_the_job() -> None:
    hits, flights = _rows()
    hits.results.append(Result("hand-written dict", [0.1, 0.1], reference=True))
    flights.results.append(Result("racy peer", [40.0, 41.0], extra={"upstream_calls": [9, 9]}))
    flights.results.append(Result("merging peer", [60.0, 61.0], extra={"upstream_calls": [1, 1]}))
    lines = report.summary([hits, flights])
    assert "| 1.05 (0.5×)<br>diskcache, on the loop | 0.10 (0.0×)<br>hand-written dict |" in lines[2]
    assert "merging peer" in lines[3]
    assert "racy peer" not in lines[3]  # calling upstream 9 times is not the same job


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # langchain-community's, when installed
async def test_loop_stall_row_measures_a_write_that_waits_for_another_process(
    tmp_path: Path,
) -> None:
    from benchmarks.peers.stall import loop_stall

    row = await loop_stall(Runner(Config(keys=10, repeats=1), tmp_path))
    by_name = {r.name: r for r in row.results}
    assert by_name["dict + sha256 per op (no disk)"].baseline
    agentcache = by_name["agentcache sqlite://"]
    assert len(agentcache.values) == 1
    assert agentcache.note.startswith("the write itself took")
