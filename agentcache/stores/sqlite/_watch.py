"""FileWatch: the cache file as a file: created private, refused unless SQLite, watched while open.

Before any connection opens the path, ``FileWatch.start`` creates the file if asked (empty and
private: 0600 in a 0700 folder; SQLite copies the file's mode to ``-wal``/``-shm``) and refuses one
that is not SQLite (``NotACacheFileError``), or, when not creating, one that is missing or empty
(``StoreMissingError``). While connections have it open, ``problem()`` says whether the path still
names the file they opened and whether that file still reads as SQLite:

- ``REPLACED``: the path's device and inode are no longer those of the file opened (it was
  deleted, renamed away, or another file was renamed over it). SQLite would go on committing into
  a file that no process will open again, and a process opening the path now gets another file,
  so the two no longer share entries or leases.
- ``OVERWRITTEN``: the same file, whose header no longer reads as the SQLite database it was
  (another program wrote over it). SQLite would put its pages back into it at the next checkpoint.

A check is one ``stat`` and one 100-byte ``pread``: cheap enough for every group commit, and
never made per read.

The header is read through a read-only descriptor of the watch's own. POSIX advisory locks belong
to a process and a file: closing *any* descriptor of the file drops every lock SQLite holds on it
through its own descriptors (SQLite's "How To Corrupt" section 2.2). So this process keeps one such
descriptor per file, shared by every watch of that file, opened before the first of them connects
and closed when the last of them ends (after its connections have closed); it is never opened and
closed around live connections.
"""

from __future__ import annotations

import enum
import os
import threading
from pathlib import Path
from typing import final

from ...errors import BackendUnavailableError, NotACacheFileError, StoreMissingError

__all__ = ["FileWatch", "Problem"]

SQLITE_HEADER = b"SQLite format 3\x00"
_HEADER_BYTES = 100  # SQLite's database header
_PAGE_SIZE = slice(16, 18)  # where the header holds the page size, which never changes here


class Problem(enum.Enum):
    """What became of a watched file since it was opened."""

    REPLACED = "deleted, renamed or replaced by another file while open"
    OVERWRITTEN = "overwritten while open: its header no longer reads as this SQLite database"


@final
class _Descriptor:
    """The one read-only descriptor this process keeps of one file, and how many watches use it."""

    __slots__ = ("fds", "identity", "users")

    def __init__(self, fd: int, identity: tuple[int, int]) -> None:
        self.fds = [fd]  # more than one only if the path changed between a stat and an open
        self.identity = identity
        self.users = 1


_lock = threading.Lock()  # watches start and end on the threads of several event loops
_descriptors: dict[tuple[int, int], _Descriptor] = {}  # (st_dev, st_ino) -> its descriptor


@final
class FileWatch:
    """One file opened by one set of connections: its identity, header, and shared descriptor."""

    __slots__ = ("_descriptor", "_name", "_page_size", "path")

    def __init__(self, path: Path, descriptor: _Descriptor) -> None:
        self.path = path
        self._name = os.fspath(path)  # what os.stat takes fastest
        self._descriptor: _Descriptor | None = descriptor
        self._page_size: bytes | None = None  # None until the file has a header (a new file has none)

    @classmethod
    def start(cls, path: Path, *, create: bool) -> FileWatch:
        """Watch ``path`` (creating it, empty and private, if ``create``); refuse one that is not SQLite."""
        try:
            if create:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            watch = cls(path, _acquire(path, create=create))
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not create:
                raise StoreMissingError(
                    f"SQLite store {path} does not exist; nothing has been recorded there"
                ) from None
            verb = "create" if create else "read"
            raise BackendUnavailableError(f"cannot {verb} SQLite store {path}: {exc}") from exc
        try:
            watch._check_start(create=create)
        except BaseException:
            watch.end()
            raise
        return watch

    @property
    def identity(self) -> tuple[int, int] | None:
        """The (device, inode) of the file watched; ``None`` once the watch has ended."""
        return None if self._descriptor is None else self._descriptor.identity

    def problem(self) -> Problem | None:
        """What became of the file since it was opened: ``None`` while it is still this database."""
        descriptor = self._descriptor
        if descriptor is None:
            return None
        try:
            now = os.stat(self._name)
        except FileNotFoundError:
            return Problem.REPLACED
        except OSError:
            return None  # the folder cannot be read: not this check's to judge (SQLite will say)
        fd = descriptor.fds[0]
        if (now.st_dev, now.st_ino) != descriptor.identity and not self._same_file(fd, now):
            return Problem.REPLACED
        try:
            header = os.pread(fd, _HEADER_BYTES, 0)
        except OSError:
            return None
        if len(header) < _PAGE_SIZE.stop or not header.startswith(SQLITE_HEADER):
            # A new file has no header until its first connection writes one.
            return None if self._page_size is None and not header else Problem.OVERWRITTEN
        if self._page_size is None:
            self._page_size = header[_PAGE_SIZE]
        elif header[_PAGE_SIZE] != self._page_size:
            return Problem.OVERWRITTEN
        return None

    def _same_file(self, fd: int, now: os.stat_result) -> bool:
        """Whether the path still names the file held after all: a file system whose inode numbers
        are not stable (some FUSE and network ones) must not look like a file replaced every time."""
        try:
            held = os.fstat(fd)
        except OSError:
            return True  # cannot tell: not replaced as far as this check knows
        assert self._descriptor is not None
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return True  # the same file, its numbers changed
        return (held.st_dev, held.st_ino) != self._descriptor.identity  # numbers that drift: cannot tell

    def end(self) -> None:
        """Stop watching (after the connections have closed); idempotent."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            _release(descriptor)

    def _check_start(self, *, create: bool) -> None:
        assert self._descriptor is not None
        fd = self._descriptor.fds[0]
        try:
            size = os.fstat(fd).st_size
            header = os.pread(fd, _HEADER_BYTES, 0)
        except OSError as exc:  # a folder, a device that cannot be read
            raise BackendUnavailableError(f"cannot read SQLite store {self.path}: {exc}") from exc
        if header and not header.startswith(SQLITE_HEADER):
            raise NotACacheFileError(
                f"{self.path} exists and is not a SQLite database; agentcache will not overwrite it. "
                "Point the cache at another path (url='sqlite:///other.db')."
            )
        if not size and not create:
            raise StoreMissingError(f"SQLite store {self.path} is empty; nothing has been recorded there")
        if len(header) >= _PAGE_SIZE.stop:
            self._page_size = header[_PAGE_SIZE]


def _acquire(path: Path, *, create: bool) -> _Descriptor:
    """The shared descriptor of the file at ``path`` (opening, or creating, it if none is held)."""
    with _lock:
        try:
            now = os.stat(path)
        except FileNotFoundError:
            if not create:
                raise
        else:
            held = _descriptors.get((now.st_dev, now.st_ino))
            if held is not None:  # watched already: never a second descriptor to close later
                held.users += 1
                return held
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o600)
        opened = os.fstat(fd)
        identity = (opened.st_dev, opened.st_ino)
        held = _descriptors.get(identity)
        if held is not None:  # the path changed between the stat and the open, to a watched file
            held.fds.append(fd)  # closed with the others: closing it now would drop their locks
            held.users += 1
            return held
        held = _descriptors[identity] = _Descriptor(fd, identity)
        return held


def _release(descriptor: _Descriptor) -> None:
    with _lock:
        descriptor.users -= 1
        if descriptor.users:
            return
        if _descriptors.get(descriptor.identity) is descriptor:
            del _descriptors[descriptor.identity]
        fds, descriptor.fds = descriptor.fds, []
    for fd in fds:
        os.close(fd)
