"""Single-flight across processes: real worker processes on one SQLite file or one Redis.

Upstream calls are counted in a file every process appends to under ``flock``. Workers start
together: each prints ``ready`` and blocks on stdin until the test releases them all at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("crossproc_worker.py")
PROCESSES = 4
CALLS_PER_PROCESS = 250


class Worker:
    def __init__(self, url: str, count_file: Path, calls: int, call_seconds: float, lease_ttl: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                url,
                str(count_file),
                str(calls),
                str(call_seconds),
                str(lease_ttl),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def expect(self, line: str) -> None:
        assert self.proc.stdout is not None
        got = self.proc.stdout.readline().strip()
        assert got == line, f"worker said {got!r}, expected {line!r}"

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 60) -> dict[str, object]:
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, out
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1])  # type: ignore[no-any-return]


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.proc.communicate()


def upstream_calls(count_file: Path) -> int:
    return len(count_file.read_text().splitlines()) if count_file.exists() else 0


def run_together(workers: list[Worker], url: str, count_file: Path) -> list[dict[str, object]]:
    for _ in range(PROCESSES):
        workers.append(Worker(url, count_file, CALLS_PER_PROCESS, call_seconds=0.3, lease_ttl=5))
    for worker in workers:
        worker.expect("ready")
    for worker in workers:
        worker.go()
    return [worker.result() for worker in workers]


def test_four_processes_on_one_sqlite_file_make_one_upstream_call(
    tmp_path: Path, workers: list[Worker]
) -> None:
    count_file = tmp_path / "calls.txt"
    results = run_together(workers, f"sqlite:///{tmp_path / 'shared.db'}", count_file)
    assert upstream_calls(count_file) == 1
    assert all(r["answers"] == ["answer to the prompt"] for r in results)
    assert sum(r["count"] for r in results) == PROCESSES * CALLS_PER_PROCESS  # type: ignore[misc]
    assert sum(r["stores"] for r in results) == 1  # type: ignore[misc]


def test_four_processes_on_one_redis_make_one_upstream_call(
    tmp_path: Path, workers: list[Worker], redis_url: str
) -> None:
    count_file = tmp_path / "calls.txt"
    results = run_together(workers, redis_url, count_file)
    assert upstream_calls(count_file) == 1
    assert all(r["answers"] == ["answer to the prompt"] for r in results)
    assert sum(r["stores"] for r in results) == 1  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_waiter_takes_over_when_the_lease_holder_is_killed(
    tmp_path: Path, workers: list[Worker], backend: str, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'shared.db'}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    )
    count_file = tmp_path / "calls.txt"
    # The holder's call never finishes by itself; its lease lives 1 s unless renewed.
    holder = Worker(url, count_file, calls=1, call_seconds=3600, lease_ttl=1.0)
    workers.append(holder)
    holder.expect("ready")
    holder.go()
    holder.expect("calling")
    waiter = Worker(url, count_file, calls=50, call_seconds=0, lease_ttl=1.0)
    workers.append(waiter)
    waiter.expect("ready")
    waiter.go()
    holder.proc.kill()  # SIGKILL: no finally blocks, no release
    holder.proc.wait()
    result = waiter.result(timeout=30)  # lease ttl + polling margin, with ample room for a slow CI
    assert result["answers"] == ["answer to the prompt"]
    assert result["stores"] == 1
    assert upstream_calls(count_file) == 2  # the killed holder's call, and the waiter's
