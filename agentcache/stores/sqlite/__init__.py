"""``sqlite:///path``: entries in one SQLite file (aiosqlite), batched so that concurrency is cheap.

How it stays fast without blocking the event loop:

- **Reads are micro-batched.** Every ``get_many`` issued while a read is being prepared or is in
  flight joins the next ``SELECT ... WHERE key IN (...)`` (``_reader.py``): 1,000 concurrent cold
  hits cost a couple of thread hops instead of 1,000.
- **Writes share a transaction (group commit).** Concurrent ``set_many`` calls are written by one
  ``BEGIN IMMEDIATE ... COMMIT`` (``_commit.py``); each caller returns only once its rows are
  committed, together with the lease released with them.
- **Hit bookkeeping is batched.** ``note_hit`` only counts in memory; the counts are written with the
  next write transaction or about a second later, never one write per hit.

Two connections (one reads, one writes) in WAL mode with ``synchronous=NORMAL``: readers never wait
for the writer, and other processes can use the same file. The file and its folder are created on
first use, private to the user (0600 / 0700); a file that is not an agentcache database is never
written to (``NotACacheFileError``). ``open_existing()`` (replay mode) creates nothing and reports
a missing, empty or schema-less file as ``StoreMissingError``. Paths expand ``~``, and a relative
path is resolved against the working directory when the store is built: ``sqlite:///.agentcache/cache.db``,
``sqlite:////abs/cache.db``, ``sqlite:///~/cache.db``.

**Busy timeout.** While another process holds the file's write lock, a write waits up to
``busy_timeout`` seconds for it, then fails (``BackendError``; the cache above fails open and rests
the store). One setting, ``SQLiteStore(path, busy_timeout=...)`` or ``sqlite:///path?busy_timeout=...``,
default ``DEFAULT_BUSY_TIMEOUT`` = 2.0 s: long enough to ride out another process's commit, short
enough that a stuck lock costs one call two seconds, not every call.

**A file that cannot be written, or stops being the cache's.** A cache file that cannot be opened
for writing (a read-only mount, a full disk) is opened read-only: stored answers are served, new ones
are not stored (the first write says so). A file deleted, renamed or replaced while open is noticed
at the next commit, which is then reported failed (never "stored"); the path is opened afresh. A
file overwritten in place or damaged is never read or written again by the process.

The parts, each with one job: ``_store.py`` (the ``Store`` facade), ``_connection.py`` (the file's
connections for the running loop: opening, following the loop, what happens when the file stops
being ours), ``_connect.py`` (making the connections: schema, read-only fallback, errors),
``_watch.py`` (the file as a file: created private, refused unless SQLite, watched while open),
``_commit.py`` (group commit), ``_reader.py`` (batched reads), ``_leases.py`` (cross-process
leases), ``_schema.py`` (tables, statements, rows).
"""

from __future__ import annotations

from ._connection import DEFAULT_BUSY_TIMEOUT
from ._leases import SQLiteLeases
from ._schema import SCHEMA_VERSION
from ._store import SQLiteStore, from_url

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteLeases", "SQLiteStore", "from_url"]
