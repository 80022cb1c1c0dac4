"""Real storage faults for the reliability tests: a small disk and a read-only folder.

Root ignores file modes, so faults are made the way the kernel makes them: a small tmpfs (a disk
that fills up) and a tmpfs remounted read-only. Where mounting is not allowed, an ordinary user is
stopped by file modes, and root runs the fresh process as ``nobody`` (``setpriv``); where neither
works, the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.file_faults import ReadOnlyFolder


def _succeeds(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root and a mount-capable container; skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if not _succeeds(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)]):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[ReadOnlyFolder]:
    """A folder to fill, then ``freeze()`` read-only for the fresh processes ``python`` starts."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:  # file modes stop an ordinary user

        def by_modes() -> None:
            for path in folder.iterdir():
                path.chmod(0o444)
            folder.chmod(0o555)

        try:
            yield ReadOnlyFolder(folder, by_modes, [sys.executable])
        finally:
            folder.chmod(0o755)
        return
    if _succeeds(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)]):

        def by_remount() -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

        try:
            yield ReadOnlyFolder(folder, by_remount, [sys.executable])
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    # Root without mounting: a fresh process run as nobody meets files only root may write.
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    shared = Path(tempfile.mkdtemp(prefix="agentcache-ro-"))
    shared.chmod(0o755)
    try:
        if not shutil.which("setpriv") or not _succeeds([*nobody, "-c", "import agentcache"]):
            pytest.skip("neither a read-only mount nor an unprivileged user is available here")

        def by_owner() -> None:
            for path in shared.iterdir():
                path.chmod(0o644)  # readable by nobody, writable by root alone

        yield ReadOnlyFolder(shared, by_owner, nobody)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
