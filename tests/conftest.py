"""Fixtures shared by the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import FakeClock


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


@pytest.fixture(autouse=True)
def _store_retried_at_once(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of recovery retry a failed store on the next call instead of resting it for 1 s.

    Tests of the resting itself are marked ``@pytest.mark.store_rest`` and keep the default.
    """
    if "store_rest" not in request.keywords:
        monkeypatch.setattr("agentcache.cache.REOPEN_SECONDS", 0.0)


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
