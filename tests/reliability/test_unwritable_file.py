"""A cache file that cannot be written (a read-only mount, a full disk) is still read.

Stored answers are served; new ones are answered by calling through and are not stored (one
warning says the file is read-only); the file itself is left as it was. A fresh process that
cannot open the file for writing opens it read-only instead. Each test prints its figures (served
share, answers acknowledged as stored, the longest single call) for ``pytest -s``.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import pytest

from agentcache import AgentCache, AgentCacheWarning
from tests.helpers import Upstream
from tests.reliability.file_faults import (
    ReadOnlyFolder,
    fill_up,
    run_fresh_process,
    store_known,
    stored_keys,
)

KNOWN = 300
NEW = 100


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_fresh_process_serves_every_stored_answer_from_a_read_only_file(
    read_only_folder: ReadOnlyFolder,
) -> None:
    db = read_only_folder.path / "cache.db"
    url = f"sqlite:///{db}"
    await store_known(url, KNOWN)
    read_only_folder.freeze()
    before = digest(db)
    figures = run_fresh_process(read_only_folder.python, url, KNOWN, NEW)
    print("read-only file, fresh process:", figures)
    assert figures["served"] == KNOWN  # every stored answer, none called again
    assert figures["acked"] == []  # nothing can be stored, and nothing claims it was
    assert len(figures["warnings"]) == 1, figures["warnings"]  # the first write says so, once
    assert "read-only" in figures["warnings"][0]
    assert digest(db) == before
    assert sorted(p.name for p in read_only_folder.path.iterdir()) == ["cache.db"]


async def test_replay_mode_reads_its_recording_from_a_read_only_file(
    read_only_folder: ReadOnlyFolder,
) -> None:
    db = read_only_folder.path / "cache.db"
    url = f"sqlite:///{db}"
    await store_known(url, KNOWN)
    read_only_folder.freeze()
    figures = run_fresh_process(read_only_folder.python, url, KNOWN, 0, mode="replay")
    assert figures["served"] == KNOWN
    assert figures["warnings"] == []  # replay never writes: nothing to say


async def test_a_fresh_process_serves_every_stored_answer_from_a_full_disk(small_disk: Path) -> None:
    db = small_disk / "cache.db"
    url = f"sqlite:///{db}"
    await store_known(url, KNOWN)
    fill_up(small_disk)
    before = digest(db)
    figures = run_fresh_process([sys.executable], url, KNOWN, NEW)
    print("full disk, fresh process:", figures)
    assert figures["served"] == KNOWN
    assert figures["acked"] == []
    assert len(figures["warnings"]) == 1, figures["warnings"]
    assert digest(db) == before


@pytest.mark.usefixtures("patient_probes")
async def test_a_running_cache_on_a_disk_that_fills_up_still_serves_every_stored_answer(
    small_disk: Path,
) -> None:
    """A failed write rests writes only: reads go on being served (the real fault, not a mock)."""
    db = small_disk / "cache.db"
    url = f"sqlite:///{db}"
    await store_known(url, KNOWN)
    known = Upstream()  # must never be called: every known key is stored
    new = Upstream()
    acked: list[str] = []
    async with AgentCache(url, l1_max_entries=0, store_retry=0) as cache:
        assert await cache.get_or_call("k0", known) == "answer to k0"  # open, before the disk fills
        fill_up(small_disk)
        with pytest.warns(AgentCacheWarning, match="full") as record:
            for i in range(KNOWN):
                assert await cache.get_or_call(f"k{i}", known) == f"answer to k{i}"
                if i < NEW:
                    stores = cache.stats.stores
                    assert await cache.get_or_call(f"new{i}", new) == f"answer to new{i}"
                    if cache.stats.stores > stores:
                        acked.append(f"new{i}")
        assert len(record) == 1, [str(w.message) for w in record]
        assert known.calls == 0
        assert new.calls == NEW
    (small_disk / "filler").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgentCacheWarning)
        async with AgentCache(url) as cache:
            stored = stored_keys(db)
            assert {cache.key(key) for key in acked} <= stored  # every acknowledged answer is there
    print(f"full disk, running process: served {KNOWN}/{KNOWN}, acknowledged {len(acked)}/{NEW}")
