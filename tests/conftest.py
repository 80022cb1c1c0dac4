"""Fixtures shared by the test suite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PYDANTIC_AI_UNAVAILABLE, FakeClock

# What imports pydantic-ai is not collected where it cannot be installed (Python 3.10); the report
# header says so.
PYDANTIC_AI_TESTS = ["pydantic_ai", "test_explain.py"]
collect_ignore = PYDANTIC_AI_TESTS if PYDANTIC_AI_UNAVAILABLE else []


def pytest_report_header() -> str | None:
    if not collect_ignore:
        return None
    return f"pydantic-ai needs Python 3.11+: not collected here: {', '.join(PYDANTIC_AI_TESTS)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's $AGENTCACHE_* settings or writes into the repo's cwd."""
    monkeypatch.delenv("AGENTCACHE_URL", raising=False)
    monkeypatch.delenv("AGENTCACHE_MODE", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def patient_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call that probes a recovering store waits for the probe to end, however busy the machine.

    For tests that count what the first calls after an outage do: with the store back, the probe
    answers well within ``PROBE_WAIT`` on a quiet machine, but reopening a file or reconnecting can
    outlast it on a loaded one (that call then goes through unstored, and calls after it skip the
    store until the probe ends), which is a different count, not a different behaviour.
    """
    monkeypatch.setattr("agentcache._guard.PROBE_WAIT", 30.0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run @pytest.mark.slow tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests are skipped unless --run-slow is given (make test-slow)."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of each store; Redis under this test's own prefix, deleted afterwards."""
    from tests.stores.conftest import REDIS_URL, delete_prefix, require_redis

    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cache.db'}"
    else:
        require_redis()
        prefix = f"agentcache-test:{uuid.uuid4().hex[:12]}:"
        yield f"{REDIS_URL}?prefix={prefix}"
        asyncio.run(delete_prefix(prefix))
