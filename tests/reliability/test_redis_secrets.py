"""Redis passwords: a password URL works, and the password never shows in logs, warnings, repr or errors.

Runs against the real local Redis (``tests/stores/conftest.py`` decides skip or fail), with an ACL
user of its own whose password is a fresh random string, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcache import AgentCache, AgentCacheError, ConfigurationError
from agentcache.stores import open_store
from agentcache.stores.redis import RedisStore
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


# -- passwords written into the URL as they are (not percent-encoded) --------------------------

REFUSED = ["#", "/", "?", "%zz"]  # cut the URL short (urlsplit), or start no %XX escape
ACCEPTED = ["@", ":"]  # read the same way by urlsplit and redis-py: the password works
DECODED = ["%41"]  # a valid escape: redis-py sends "A", so this password is simply wrong


@pytest.fixture
def make_user() -> Iterator[Callable[[str], tuple[str, str]]]:
    """Creates Redis ACL users with a given password: (user, key prefix); deleted afterwards."""
    require_redis()
    import redis

    admin = redis.Redis.from_url(REDIS_URL)
    made: list[tuple[str, str]] = []

    def make(password: str) -> tuple[str, str]:
        user = f"agentcache-test-{uuid.uuid4().hex[:8]}"
        prefix = f"agentcache-test:{uuid.uuid4().hex[:12]}:"
        admin.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=[f"{prefix}*"],
            channels=[f"{prefix}*"],
            commands=["+@all"],
        )
        made.append((user, prefix))
        return user, prefix

    yield make
    for user, prefix in made:
        admin.acl_deluser(user)
        for key in admin.scan_iter(f"{prefix}*"):
            admin.delete(key)
    admin.close()


def raw_url(user: str, password: str, prefix: str) -> str:
    """A URL with the password exactly as typed: no percent-encoding."""
    parts = urlsplit(REDIS_URL)
    return f"redis://{user}:{password}@{parts.hostname}:{parts.port or 6379}{parts.path}?prefix={prefix}"


async def use_cache(url: str) -> tuple[str, list[str]]:
    """('refused' | 'stored' | 'failed open', everything the cache and its store show of themselves)."""
    try:
        cache = AgentCache(url)
    except ConfigurationError as exc:
        return "refused", traceback.format_exception(exc)
    upstream = Upstream()
    async with cache:
        assert await cache.get_or_call("q", upstream) == "answer to q"
        shown = [repr(cache), str(cache), repr(cache.store), str(cache.store), cache.store.url]
        shown += [repr(cache.stats), str(cache.stats)]
    async with AgentCache(url, l1_max_entries=0) as again:
        assert await again.get_or_call("q", upstream) == "answer to q"
    return ("stored" if upstream.calls == 1 else "failed open"), shown


def cli_output(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    from agentcache.cli import main

    main(list(argv))
    captured = capsys.readouterr()
    return [captured.out, captured.err]


@pytest.mark.parametrize("reserved", REFUSED + ACCEPTED + DECODED)
def test_a_password_typed_with_a_reserved_character_never_shows(
    reserved: str,
    make_user: Callable[[str], tuple[str, str]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = secrets.token_hex(12)
    password = f"pw{reserved}{secret}"
    user, prefix = make_user(password)
    url = raw_url(user, password, prefix)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        outcome, said = asyncio.run(use_cache(url))
        said += cli_output(capsys, "--url", url, "stats")
        said += cli_output(capsys, "--url", url, "ls")
        monkeypatch.setenv("AGENTCACHE_URL", url)
        said += cli_output(capsys, "stats")
        if outcome == "refused":
            from agentcache.stores.redis import RedisStore

            with pytest.raises(ConfigurationError) as direct:
                RedisStore(url)
            said += traceback.format_exception(direct.value)
    said += everything_said(caplog, record)
    for text in said:
        assert secret not in text, f"the password leaked: {text[:300]!r}"
    expected = {**dict.fromkeys(REFUSED, "refused"), **dict.fromkeys(ACCEPTED, "stored")}
    assert outcome == expected.get(reserved, "failed open")
    if outcome == "refused":
        assert "quote(password, safe='')" in "".join(said), "the fix is named"


@pytest.mark.parametrize(
    "url",
    [
        "redis://:6390#{s}@10.9.9.9:6379/0",  # was localhost:6390
        "redis://:6390#{s}@10.9.9.9:6379/0?prefix=mine:",  # ... and dropped the prefix
        "redis://:6390?prefix={s}@10.9.9.9:6379/0",  # was localhost:6390, prefix "<secret>@10.9..."
        "redis://:{s}/1@10.9.9.9:6379/0",
        "rediss://user:{s}?x@10.9.9.9:6380/0",
        "redis://10.9.9.9:6379/0?prefix=a@b",  # an '@' after the host: ambiguous too
        "redis://:pw\t{s}@10.9.9.9:6379/0",  # urlsplit drops the tab
        "redis://:pw\uff03{s}@10.9.9.9:6379/0",  # a fullwidth '#': urlsplit's own error shows it all
        "redis://:{s}",  # '@host' forgotten: the password reads as a port
        "sqlite://user:{s}#x@host/cache.db",
    ],
)
def test_a_url_that_reads_two_ways_is_refused_before_anything_runs(url: str) -> None:
    secret = "s" + secrets.token_hex(12)
    url = url.format(s=secret)
    with pytest.raises(ConfigurationError) as refused:
        AgentCache(url)
    message = str(refused.value)
    assert "percent-encode" in message, f"the fix is named: {message}"
    assert_secret_absent(secret, *traceback.format_exception(refused.value))


def test_a_sqlite_path_with_a_hash_is_refused_not_cut_short(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="%23"):
        AgentCache(f"sqlite:///{tmp_path}/run#1.db")  # was the file "run"
    assert list(tmp_path.iterdir()) == [], "nothing was created"


passwords = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12)
MARK = "QJXZ"  # in the middle of every generated password; in no message of agentcache


@settings(max_examples=300, deadline=None)
@given(user=st.sampled_from(["", "alice"]), head=passwords, tail=passwords)
def test_any_password_is_refused_or_routed_exactly_where_it_says(user: str, head: str, tail: str) -> None:
    """Either a clear error without the password, or redis-py reads host, port, db and password as meant."""
    from redis.connection import parse_url

    password = f"{head}{MARK}{tail}"
    url = f"redis://{user}:{password}@10.1.2.3:6390/3?prefix=mine:"
    try:
        store = open_store(url)
    except ConfigurationError as exc:
        said = "".join(traceback.format_exception(exc))
    else:
        said = None
    if said is not None:
        assert MARK not in said
        return
    assert isinstance(store, RedisStore)
    assert store.prefix == "mine:"
    meant = parse_url(url.split("?")[0])  # what the store hands to redis-py (the query is its own)
    assert (meant["host"], meant["port"], meant["db"]) == ("10.1.2.3", 6390, 3)
    assert meant["password"] == unquote(password)
    assert meant.get("username", "") == user
    assert store.url == f"redis://{user}:***@10.1.2.3:6390/3"
    assert MARK not in repr(store)
