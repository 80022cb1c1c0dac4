"""Redis passwords: a password URL works, and the password never shows in logs, warnings, repr or errors.

Runs against the real local Redis (``tests/stores/conftest.py`` decides skip or fail), with an ACL
user of its own whose password is a fresh random string, deleted afterwards.
"""

from __future__ import annotations

import logging
import secrets
import traceback
import uuid
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from agentcache import AgentCache, AgentCacheError, ConfigurationError
from tests.helpers import Upstream
from tests.stores.conftest import REDIS_URL, require_redis


@pytest.fixture
def acl_user() -> Iterator[tuple[str, str, str]]:
    """(user, password, key prefix): a Redis user that may only touch its own prefix."""
    require_redis()
    import redis

    user = f"agentcache-test-{uuid.uuid4().hex[:8]}"
    password = "pw-" + secrets.token_hex(12) + "@:/%"  # URL-special characters too
    prefix = f"agentcache-test:{uuid.uuid4().hex[:12]}:"
    admin = redis.Redis.from_url(REDIS_URL)
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{prefix}*"],
        channels=[f"{prefix}*"],
        commands=["+@all"],
    )
    try:
        yield user, password, prefix
    finally:
        admin.acl_deluser(user)
        for key in admin.scan_iter(f"{prefix}*"):
            admin.delete(key)
        admin.close()


def url_for(user: str, password: str, prefix: str, port: int | None = None) -> str:
    parts = urlsplit(REDIS_URL)
    host = f"{parts.hostname}:{port or parts.port or 6379}"
    return f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{host}{parts.path}?prefix={prefix}"


def assert_secret_absent(password: str, *texts: Any) -> None:
    encoded = quote(password, safe="")
    for text in texts:
        assert password not in str(text), f"password leaked in {str(text)[:200]!r}"
        assert encoded not in str(text), f"encoded password leaked in {str(text)[:200]!r}"


def everything_said(caplog: pytest.LogCaptureFixture, record: list[warnings.WarningMessage]) -> list[str]:
    return [r.getMessage() for r in caplog.records] + [str(w.message) for w in record]


async def test_a_password_url_works_and_the_password_never_shows(
    acl_user: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    user, password, prefix = acl_user
    caplog.set_level(logging.DEBUG)
    upstream = Upstream()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with AgentCache(url_for(user, password, prefix)) as cache:
            assert await cache.get_or_call("q", upstream) == "answer to q"
            assert await cache.get_or_call("q", upstream) == "answer to q"
            shown = [repr(cache), repr(cache.store), cache.store.url, cache.stats]
        async with AgentCache(url_for(user, password, prefix), l1_max_entries=0) as again:
            assert await again.get_or_call("q", upstream) == "answer to q"  # from Redis
    assert upstream.calls == 1
    assert ":***@" in repr(cache)
    assert_secret_absent(password, *shown, *everything_said(caplog, record))


@pytest.mark.parametrize("policy", ["warn", "raise"])
async def test_a_wrong_password_fails_without_showing_it(
    acl_user: tuple[str, str, str], caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    user, _, prefix = acl_user
    wrong = "wrong-" + secrets.token_hex(12)
    caplog.set_level(logging.DEBUG)
    said: list[str] = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with AgentCache(url_for(user, wrong, prefix), on_store_error=policy) as cache:
            if policy == "warn":
                assert await cache.get_or_call("q", Upstream()) == "answer to q"
                assert cache.stats.errors > 0
            else:
                with pytest.raises(AgentCacheError) as raised:
                    await cache.get_or_call("q", Upstream())
                said += traceback.format_exception(raised.value)
    said += everything_said(caplog, record)
    assert policy == "raise" or any("failed" in s for s in said)
    assert_secret_absent(wrong, repr(cache), *said)


@pytest.mark.parametrize("policy", ["warn", "raise"])
async def test_an_unreachable_server_fails_without_showing_the_password(
    caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    password = "pw-" + secrets.token_hex(12)
    caplog.set_level(logging.DEBUG)
    said: list[str] = []
    url = f"redis://someone:{password}@127.0.0.1:1/0?connect_timeout=0.5"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        async with AgentCache(url, on_store_error=policy) as cache:
            try:
                assert await cache.get_or_call("q", Upstream()) == "answer to q"
            except AgentCacheError as exc:
                said += traceback.format_exception(exc)
    said += everything_said(caplog, record)
    assert said, "the outage was reported somewhere"
    assert_secret_absent(password, repr(cache), *said)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:{pw}@127.0.0.1:notaport/0",
        "redis://:{pw}@127.0.0.1:6379/notadb",
        "redis://:{pw}@127.0.0.1:6379/0?unknown=1",
        "redis://:{pw}@127.0.0.1:6379/0?timeout=soon",
        "redis://:{pw}@127.0.0.1:6379/0?ssl_cert_reqs=none",
        "sqlite://user:{pw}@host/cache.db",
        "ftp://user:{pw}@host/x",
    ],
)
def test_configuration_errors_never_show_the_password(url: str) -> None:
    password = "pw-" + secrets.token_hex(12)
    with pytest.raises(ConfigurationError) as raised:
        AgentCache(url.format(pw=password))
    assert_secret_absent(password, *traceback.format_exception(raised.value))
