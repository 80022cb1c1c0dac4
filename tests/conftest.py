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
