"""The SQLite store's writer: one connection doing group commits.

The writer is a thread of this process, or (`process=True`, what `bridge serve`
and `bridge worker` run) a process of its own running the same `commit_group`:
see bridge/store/sqlite/process.py for why.

Why a single writer: SQLite allows one writer at a time. A commit per
request through the thread pool caps near 2,900 acknowledgements a second on
this kind of machine (performance.md), because every request pays its own
fsync. Here every write from this process is a job on one queue; the writer
takes every job that is waiting, runs them in one transaction (a savepoint
each, so one failing job does not undo the others) and commits once. Requests
that arrive together share one fsync, and no writer in this process waits on
SQLite's lock (figures in docs/benchmarks.md). We do not linger to fill a batch:
the next batch is whatever arrived while the previous commit ran (lingering
measured slower).

synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss,
and a 2xx promises the event is durable. FULL cost ~12% in the same test.

Readers (CLI, admin, the worker's reads) use their own connections; WAL lets
them run beside the writer. A second process's writer (`bridge worker` beside
`bridge serve --no-worker`) takes turns at SQLite's write lock with this one:
the writer waits for it itself (bridge/store/sqlite/lock.py).

This module holds the connection settings and `commit_group`; the queue that
feeds it is the store's (bridge/store/sqlite/store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import StoreUnavailable
from bridge.store.sqlite.ingest import INGEST_ROWS_PER_STATEMENT, EventRow, ingest_many
from bridge.store.sqlite.lock import WriteLock, is_busy

MAX_JOBS_PER_COMMIT = 512
BUSY_TIMEOUT_MS = 10_000
# A typical webhook body (a Shopify order is 5-8 KB) fits in one 8 KB page with its
# row; with SQLite's default 4 KB it spills into two overflow pages. Every page a
# commit touches is written to the WAL, so new databases use 8 KB pages:
# ~25% less writer time a webhook measured on this machine (docs/benchmarks.md).
PAGE_SIZE = 8192
WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024


@dataclass
class _Job:
    fn: Callable[..., Any]  # called as fn(conn, *args)
    args: tuple[Any, ...]
    future: Any  # concurrent.futures.Future or asyncio.Future; None in the writer process
    # An inbound webhook as its events row (event_row): the writer inserts the
    # webhooks of a group together (ingest_many) and falls back to `fn` one by one.
    ingest: EventRow | None = None

    def run(self, conn: sqlite3.Connection) -> Any:
        return self.fn(conn, *self.args)


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect only on a new, empty database
    _use_wal(conn)
    # SQLite checkpoints the WAL every 1,000 pages by default: 8 MB with 8 KB pages.
    # Keep it at the 4 MB of the default page size, whatever the file's page size.
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_BYTES // page_size}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Savepoints keep their undo log in memory, not in a temporary file opened and
    # unlinked for every group commit.
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting as busy_timeout would: on a new file, another process's first transaction
    (two instances starting at once) makes the switch fail with "database is locked" at once, without
    SQLite's busy handler."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_writer(path: Path) -> sqlite3.Connection:
    """The writer's connection (the schema is the migrations' business: bridge/store/sqlite/migrate.py)."""
    conn = connect(path)
    # The writer waits for the write lock itself (bridge/store/sqlite/lock.py), not in SQLite's busy handler.
    conn.execute("PRAGMA busy_timeout = 0")
    # The writer looks up a random leaf of the dedupe index for every webhook:
    # 16 MB of cache (SQLite's default is 2 MB) keeps more of it in memory.
    conn.execute("PRAGMA cache_size = -16384")
    return conn


def execute(conn: sqlite3.Connection, sql: str, *params: Any) -> int:
    """A write job of one SQL statement, for `write(execute, sql, *params)`: its row count."""
    return conn.execute(sql, params).rowcount


def _unavailable(exc: Exception) -> Exception:
    return StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.Error) else exc


def commit_group(lock: WriteLock, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
    """Run `jobs` in one transaction, a savepoint each, and commit once.

    Returns (job, ok, value or exception) for every job, in order, and never raises:
    whatever goes wrong becomes every job's StoreUnavailable, so no waiter hangs.
    """
    try:
        return _commit(lock, jobs)
    except Exception as exc:
        with contextlib.suppress(sqlite3.Error):
            lock.conn.execute("ROLLBACK")
        lock.released()
        return [(job, False, StoreUnavailable(f"write failed: {exc}")) for job in jobs]


def _commit(lock: WriteLock, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
    conn = lock.conn
    together = True  # the webhooks in the transaction below: tried as one insert first
    if len(jobs) <= INGEST_ROWS_PER_STATEMENT and all(job.ingest is not None for job in jobs):
        # Only webhooks, as under load: their insert is one statement, which SQLite
        # commits by itself. No BEGIN and COMMIT around it: two statements less
        # (see ingest_many for why the count of statements matters).
        changes = conn.total_changes
        try:
            values = ingest_many(conn, [job.ingest for job in jobs if job.ingest is not None])
        except Exception as exc:
            if is_busy(exc) and conn.total_changes == changes:  # another writer's turn, nothing written:
                lock.met()  # all together below, once the lock is this writer's
            else:  # the statement inserted nothing, or its rows are committed:
                together = False  # one by one below, in a transaction, each webhook gets its own answer
        else:
            lock.released(webhooks=True)
            return [(job, True, value) for job, value in zip(jobs, values)]
    try:
        lock.begin(webhooks=any(job.ingest is not None for job in jobs))
    except sqlite3.Error as exc:
        return [(job, False, StoreUnavailable(f"cannot begin a transaction: {exc}")) for job in jobs]
    results: list[tuple[_Job, bool, Any]] = []
    ingests: list[_Job] = []
    for job in jobs:
        if job.ingest is not None:
            ingests.append(job)
            continue
        if ingests:  # keep the order of the queue: the webhooks before this job first
            _run_ingests(conn, ingests, results, together)
            ingests = []
        conn.execute("SAVEPOINT job")
        try:
            value = job.run(conn)
        except Exception as exc:  # the job's own failure: undo it alone
            _still_in_transaction(conn)
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((job, False, _unavailable(exc)))
        else:
            conn.execute("RELEASE job")
            results.append((job, True, value))
    if ingests:
        _run_ingests(conn, ingests, results, together)
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        return [(job, False, StoreUnavailable(f"commit failed: {exc}")) for job in jobs]
    finally:
        lock.released()
    return results


def _settle(results: list[tuple[_Job, bool, Any]]) -> None:
    """Hand each job its result: thread futures directly, event-loop futures in one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for job, ok, value in results:
        future = job.future
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, ok, value))
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_in_loop, items)


def _settle_in_loop(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # the awaiting request was cancelled (client went away)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# -- SQL, one function per statement group; each runs inside the writer's transaction --


def _run_ingests(conn: sqlite3.Connection, jobs: list[_Job], results: list[tuple[_Job, bool, Any]],
                 together: bool = True) -> None:
    """The webhooks of a group in as few statements as possible (unless `together` is False: that
    was tried and failed); if that fails, one by one, so each gets its own answer. (A failed
    statement inserts nothing; a group of more than INGEST_ROWS_PER_STATEMENT may have inserted
    its first rows, which one by one then answer as duplicates of themselves: stored once,
    acknowledged 2xx.)"""
    if together:
        try:
            values = ingest_many(conn, [job.ingest for job in jobs if job.ingest is not None])
        except Exception:
            _still_in_transaction(conn)
        else:
            results.extend((job, True, value) for job, value in zip(jobs, values))
            return
    for job in jobs:
        try:
            results.append((job, True, job.run(conn)))
        except Exception as exc:
            _still_in_transaction(conn)
            results.append((job, False, _unavailable(exc)))


def _still_in_transaction(conn: sqlite3.Connection) -> None:
    """Called while handling a job's exception: re-raises it when SQLite rolled the whole transaction
    back (a full disk, an I/O error), so that every job of the group fails with that reason."""
    if not conn.in_transaction:
        raise  # noqa: PLE0704 (only ever called from an `except` block)


