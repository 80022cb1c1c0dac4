"""Settings from the environment: an error about one names the variable it came from."""

from __future__ import annotations

import pytest

from agentcache import AgentCache, ConfigurationError
from agentcache._options import store_from_setting
from agentcache.stores.memory import MemoryStore


def test_a_bad_agentcache_url_is_named_by_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCACHE_URL", "foo")
    with pytest.raises(ConfigurationError, match=r"^\$AGENTCACHE_URL='foo' names no store: .*not a URL"):
        AgentCache()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("foo", "not a URL"),
        ("ftp://host/x", "known schemes"),
        ("redis://user:secret@host:port/0", "port that is not a number"),
        ("memory://?max_entries=many", "max_entries"),
    ],
)
def test_every_bad_agentcache_url_names_the_variable_and_hides_passwords(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("AGENTCACHE_URL", value)
    with pytest.raises(ConfigurationError, match=r"^\$AGENTCACHE_URL=") as refused:
        store_from_setting(None)
    assert says in str(refused.value)
    assert "secret" not in str(refused.value)


def test_a_bad_url_passed_in_code_does_not_blame_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCACHE_URL", "memory://")
    with pytest.raises(ConfigurationError, match="not a URL") as refused:
        store_from_setting("foo")
    assert "AGENTCACHE_URL" not in str(refused.value)


def test_a_store_is_used_as_given_and_anything_else_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCACHE_URL", "foo")  # not consulted when a store or URL is given
    store = MemoryStore()
    assert store_from_setting(store) is store
    assert isinstance(store_from_setting("memory://"), MemoryStore)
    with pytest.raises(ConfigurationError, match="url must be a store URL or a Store, not 3"):
        store_from_setting(3)  # type: ignore[arg-type]


def test_the_url_comes_from_the_environment_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCACHE_URL", "memory://?max_entries=7")
    store = store_from_setting(None)
    assert isinstance(store, MemoryStore)
    assert store.url == "memory://?max_entries=7"


def test_a_bad_agentcache_mode_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCACHE_MODE", "sometimes")
    with pytest.raises(ConfigurationError, match=r"\$AGENTCACHE_MODE 'sometimes'"):
        AgentCache("memory://")
