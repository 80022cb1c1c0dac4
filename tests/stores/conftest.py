"""Fixtures for the store tests: a real Redis per test (own key prefix), or a clear skip.

Redis is expected at ``$AGENTCACHE_TEST_REDIS`` (default ``redis://127.0.0.1:6379/9``). When it is
unreachable the Redis tests skip with the reason, unless ``AGENTCACHE_REQUIRE_REDIS=1`` (CI), where
they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("AGENTCACHE_TEST_REDIS", "redis://127.0.0.1:6379/9")
# A database of its own (same server) for tests that try to make a store delete more than it should:
# if one ever succeeds, the other tests' data in REDIS_URL is not what it deletes.
REDIS_OWN_DB_URL = os.environ.get(
    "AGENTCACHE_TEST_REDIS_OWN_DB", urlsplit(REDIS_URL)._replace(path="/13", query="").geturl()
)


def _redis_answers(url: str) -> str | None:
    """None if a Redis server answers PING at ``url``, else why not."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1.0) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError as exc:
        return f"{exc}"
    return None if reply.startswith((b"+PONG", b"-NOAUTH")) else f"unexpected reply {reply!r}"


_REDIS_PROBLEM: list[str | None] = []


def require_redis() -> None:
    """Skip (or, under AGENTCACHE_REQUIRE_REDIS=1, fail) when the test Redis is unreachable."""
    if not _REDIS_PROBLEM:
        _REDIS_PROBLEM.append(_redis_answers(REDIS_URL))
    problem = _REDIS_PROBLEM[0]
    if problem is None:
        return
    message = f"Redis is not reachable at {REDIS_URL} ({problem})"
    if os.environ.get("AGENTCACHE_REQUIRE_REDIS") == "1":
        pytest.fail(f"{message}; AGENTCACHE_REQUIRE_REDIS=1 makes that a failure")
    pytest.skip(f"{message}; start redis-server, or set AGENTCACHE_TEST_REDIS")


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so concurrent runs and tests never see each other."""
    return f"agentcache-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_url(redis_prefix: str) -> AsyncIterator[str]:
    """A redis:// URL with this test's prefix; its keys are deleted afterwards."""
    require_redis()
    yield f"{REDIS_URL}?prefix={redis_prefix}"
    await delete_prefix(redis_prefix)


@pytest.fixture
async def redis_own_db_url(redis_prefix: str) -> AsyncIterator[str]:
    """A redis:// URL on REDIS_OWN_DB_URL with this test's prefix; its keys are deleted afterwards."""
    require_redis()
    yield f"{REDIS_OWN_DB_URL}?prefix={redis_prefix}"
    await delete_prefix(redis_prefix, REDIS_OWN_DB_URL)


async def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key under ``prefix`` in the test Redis (database ``url``)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        doomed = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if doomed:
            await client.delete(*doomed)
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on its own port, which a test may kill and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Ready when it says so on stdout (no polling of the port).
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if b"Ready to accept connections" in line:
                return
        raise RuntimeError(f"redis-server on port {self.port} exited early")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (needs the redis-server binary)."""
    if shutil.which("redis-server") is None:
        if os.environ.get("AGENTCACHE_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed; AGENTCACHE_REQUIRE_REDIS=1 needs it")
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
