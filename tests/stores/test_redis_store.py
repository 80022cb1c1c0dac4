"""What is particular to the Redis store: URLs, the key layout, server-side expiry, outages."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agentcache import AgentCache, AgentCacheWarning, BackendUnavailableError, ConfigurationError
from agentcache.stores import Entry, open_store
from agentcache.stores.redis import RedisStore

from .conftest import REDIS_URL, RedisServer

NOW = 1_800_000_000.0


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def test_urls_carry_db_password_prefix_and_tls_options() -> None:
    store = open_store("rediss://user:s3cret@cache.example:6380/4?prefix=app:&ssl_cert_reqs=none&timeout=2")
    assert isinstance(store, RedisStore)
    assert store.prefix == "app:"
    assert "s3cret" not in store.url
    assert "s3cret" not in repr(store)
    assert store.url == "rediss://user:***@cache.example:6380/4"
    options = store._connection.options
    assert (options["ssl_cert_reqs"], options["socket_timeout"]) == ("none", 2.0)
    assert "s3cret" not in repr(store._connection)


def test_without_redis_py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        m for m in sys.modules if m.split(".")[0] == "redis" or m.startswith("agentcache.stores.redis")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r'pip install "agentcache\[redis\]"'):
        open_store("redis://localhost/0")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost/0?colour=blue", "unknown option"),
        ("redis://localhost/zero", "database must be a number"),
        ("redis://localhost/0?ssl_cert_reqs=none", "rediss://"),
        ("rediss://localhost/0?ssl_cert_reqs=maybe", "none, optional or required"),
        ("redis://localhost/0?prefix=", "prefix must not be empty"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_store(url)


async def test_entries_expire_in_redis_after_their_lifetime(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis
) -> None:
    store = open_store(redis_url)
    async with AgentCache(store) as cache:
        await cache.set("k", "v", ttl=90)
        await cache.set("forever", "v")
        ttl_ms = await raw.pttl(f"{redis_prefix}e:{cache.key('k')}")
        assert 89_000 < ttl_ms <= 90_000
        assert await raw.pttl(f"{redis_prefix}e:{cache.key('forever')}") == -1


async def test_an_entry_born_expired_is_not_kept(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis
) -> None:
    store = open_store(redis_url)
    await store.set_many([("ns:v1:k", Entry(b"old", NOW))])
    await store.set_many([("ns:v1:k", Entry(b"new", NOW, expires_at=NOW))])
    assert await raw.exists(f"{redis_prefix}e:ns:v1:k") == 0
    await store.aclose()


async def test_glob_characters_in_the_prefix_do_not_widen_scans(redis_prefix: str, redis_url: str) -> None:
    wild = open_store(f"{REDIS_URL}?prefix={redis_prefix}[ab]*:")
    plain = open_store(f"{REDIS_URL}?prefix={redis_prefix}a:")
    await plain.set_many([("ns:v1:k", Entry(b"other", NOW))])
    await wild.set_many([("ns:v1:k", Entry(b"mine", NOW))])
    assert [(k, e.value) async for k, e in wild.scan()] == [("ns:v1:k", b"mine")]
    assert await wild.clear(None) == 1
    assert [k async for k, _ in plain.scan()] == ["ns:v1:k"]
    await wild.aclose()
    await plain.aclose()


async def test_an_unreadable_value_is_a_miss_and_is_logged(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(redis_url)
    await raw.set(f"{redis_prefix}e:ns:v1:k", b"not an envelope")
    with caplog.at_level(logging.WARNING, logger="agentcache.stores.redis"):
        assert await store.get_many(["ns:v1:k"], NOW) == [None]
    assert "unreadable redis entry ns:v1:k" in caplog.text
    await store.aclose()


async def test_a_server_that_is_down_is_reported_as_unavailable(private_redis: RedisServer) -> None:
    store = open_store(private_redis.url)
    private_redis.kill()
    with pytest.raises(BackendUnavailableError, match=str(private_redis.port)):
        await store.open()
    with pytest.raises(BackendUnavailableError):
        await store.get_many(["ns:v1:k"], NOW)
    await store.aclose()


class Upstream:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str) -> str:
        self.calls += 1
        return f"answer to {prompt}"


@pytest.mark.usefixtures("patient_probes")
async def test_redis_dying_mid_run_fails_open_once_and_caching_resumes(private_redis: RedisServer) -> None:
    upstream = Upstream()
    async with AgentCache(private_redis.url, l1_max_entries=0, store_retry=0.0) as cache:
        assert await cache.get_or_call("a", upstream) == "answer to a"
        assert await cache.get_or_call("a", upstream) == "answer to a"
        assert upstream.calls == 1  # served by Redis (no L1)

        private_redis.kill()
        with pytest.warns(AgentCacheWarning) as caught:
            for prompt in ("b", "c", "a"):
                assert await cache.get_or_call(prompt, upstream) == f"answer to {prompt}"
        assert len([w for w in caught if issubclass(w.category, AgentCacheWarning)]) == 1
        assert upstream.calls == 4
        assert cache.stats.errors >= 3

        private_redis.start()  # a fresh, empty server on the same port
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # recovered: no more warnings
            assert await cache.get_or_call("d", upstream) == "answer to d"
            assert await cache.get_or_call("d", upstream) == "answer to d"
        assert upstream.calls == 5


@pytest.mark.usefixtures("patient_probes")
async def test_redis_down_at_start_fails_open_and_recovers(private_redis: RedisServer) -> None:
    upstream = Upstream()
    private_redis.kill()
    async with AgentCache(private_redis.url, l1_max_entries=0, store_retry=0.0) as cache:  # retry at once
        with pytest.warns(AgentCacheWarning, match="calling through"):
            assert await cache.get_or_call("a", upstream) == "answer to a"
        private_redis.start()
        assert await cache.get_or_call("a", upstream) == "answer to a"
        assert await cache.get_or_call("a", upstream) == "answer to a"
    assert upstream.calls == 2
